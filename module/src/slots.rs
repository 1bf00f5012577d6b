//! Slots, as SoftHSMv2 lays them out: one slot per initialised token, with a slot ID derived from
//! the token's serial number (stable across restarts and processes), plus always one free slot
//! holding an uninitialised token; `C_InitToken` on the free slot creates a new token.
//!
//! A token's database is opened on first use, not at `C_Initialize`: listing slots needs only the
//! token directories, whose names are the serial numbers.

use crate::error::{err, Result};
use crate::module::Module;
use crate::store::DB_FILE;
use crate::token::Token;
use cryptoki_sys::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// An initialised token's slot: its directory, and the token once opened.
pub struct TokenSlot {
    pub dir: PathBuf,
    token: OnceLock<Arc<Token>>,
    /// A SoftHSMv2 token (the drop-in) whose Tessera token may not exist yet: its directory in
    /// SoftHSMv2's store and its serial (see `migrate::dropin`).
    softhsm2: Option<(PathBuf, String)>,
}

impl TokenSlot {
    fn new(dir: PathBuf) -> TokenSlot {
        TokenSlot { dir, token: OnceLock::new(), softhsm2: None }
    }

    fn opened(dir: PathBuf, t: Arc<Token>) -> TokenSlot {
        let s = TokenSlot::new(dir);
        let _ = s.token.set(t);
        s
    }

    /// The token, opening its database the first time.
    pub fn token(&self, m: &Module) -> Result<Arc<Token>> {
        if let Some(t) = self.token.get() {
            return Ok(t.clone());
        }
        if let Some((source, serial)) = &self.softhsm2 {
            let store = self.dir.parent().unwrap_or(Path::new("."));
            crate::migrate::dropin::ensure_pending(store, source, serial)?;
        }
        let t = Token::open(&self.dir, m.kek.clone(), m.pin_policy())?;
        Ok(self.token.get_or_init(|| t).clone())
    }
}

/// The slot ID of a token: the first 31 bits of its serial number (16 hex digits), or of a hash
/// of its directory name for directories not named after a serial.
pub fn slot_id_for(dir: &Path) -> CK_SLOT_ID {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let v = match u32::from_str_radix(name.get(..8).unwrap_or(""), 16) {
        Ok(v) => v,
        Err(_) => {
            let d = crate::crypto::digest::digest(&crate::crypto::digest::SHA256, name.as_bytes());
            u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]])
        }
    };
    (v & 0x7fff_ffff) as CK_SLOT_ID
}

/// The slot table of this process.
#[derive(Default)]
pub struct Slots {
    /// Initialised tokens by slot ID.
    tokens: HashMap<CK_SLOT_ID, Arc<TokenSlot>>,
    /// Slot IDs under which a token was initialised in this process before it got its own ID:
    /// they keep working for this process so that an application can go on using the slot it
    /// initialised.
    aliases: HashMap<CK_SLOT_ID, Arc<Token>>,
    /// The slot holding the uninitialised token.
    pub free: CK_SLOT_ID,
}

/// What is in a slot.
#[derive(Clone)]
pub enum SlotContent {
    Token(Arc<TokenSlot>),
    Alias(Arc<Token>),
    Free,
}

impl Slots {
    /// Slot IDs in `C_GetSlotList` order: tokens by slot ID, then the free slot.
    pub fn ids(&self) -> Vec<CK_SLOT_ID> {
        let mut ids: Vec<_> = self.tokens.keys().copied().collect();
        ids.sort_unstable();
        ids.push(self.free);
        ids
    }

    /// The tokens opened so far.
    pub fn tokens(&self) -> Vec<Arc<Token>> {
        self.tokens.values().filter_map(|s| s.token.get().cloned()).collect()
    }

    pub fn get(&self, id: CK_SLOT_ID) -> Result<SlotContent> {
        if let Some(t) = self.tokens.get(&id) {
            return Ok(SlotContent::Token(t.clone()));
        }
        if let Some(t) = self.aliases.get(&id) {
            return Ok(SlotContent::Alias(t.clone()));
        }
        if id == self.free {
            return Ok(SlotContent::Free);
        }
        Err(err(CKR_SLOT_ID_INVALID))
    }

    fn in_use(&self, id: CK_SLOT_ID) -> bool {
        self.tokens.contains_key(&id) || self.aliases.contains_key(&id)
    }

    /// Drops every slot of the token stored in `dir` (its own slot and the IDs it was initialised
    /// under in this process), once its store is gone (`T_DeleteToken`), and places the free slot.
    pub fn forget(&mut self, dir: &Path) {
        self.tokens.retain(|_, t| t.dir != dir);
        self.aliases.retain(|_, t| t.dir != dir);
        self.place_free();
    }

    /// The token stored in `dir`, if this process has opened it.
    pub fn opened_at(&self, dir: &Path) -> Option<Arc<Token>> {
        let own = self.tokens.values().find(|t| t.dir == dir).and_then(|t| t.token.get().cloned());
        own.or_else(|| self.aliases.values().find(|t| t.dir == dir).cloned())
    }

    fn place_free(&mut self) {
        let mut id = self.tokens.len() as CK_SLOT_ID;
        while self.in_use(id) {
            id += 1;
        }
        self.free = id;
    }
}

impl Module {
    /// Looks at the token directory again: new tokens (made by other processes) appear, deleted
    /// ones go, and the free slot is placed.
    pub fn rescan(&self) -> Result<()> {
        let dir = &self.cfg.tokendir;
        let mut found: Vec<PathBuf> = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let p = e.path();
                    let hidden = e.file_name().to_string_lossy().starts_with('.');
                    if !hidden && p.join(DB_FILE).is_file() {
                        found.push(p);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // The drop-in: SoftHSMv2's tokens that have no Tessera token yet appear too, under the
        // directory their Tessera token will have (made when the token is first used).
        // Two SoftHSMv2 tokens with one serial (a copied directory, or one planted beside the
        // real one): neither, since either could be the one the serial's PINs open.
        let mut softhsm2: HashMap<PathBuf, (PathBuf, String)> = HashMap::new();
        if let Some(sdir) = &self.cfg.softhsm2_tokendir {
            let mut twice = Vec::new();
            for f in crate::migrate::dropin::scan(sdir) {
                let own = dir.join(&f.serial);
                if found.contains(&own) {
                    continue;
                }
                if let Some((other, _)) = softhsm2.get(&own) {
                    tracing::warn!(
                        "SoftHSMv2 tokens {} and {} have the same serial {}: neither is shown",
                        other.display(),
                        f.dir.display(),
                        f.serial
                    );
                    twice.push(own);
                    continue;
                }
                softhsm2.insert(own, (f.dir, f.serial));
            }
            for t in twice {
                softhsm2.remove(&t);
            }
            found.extend(softhsm2.keys().cloned());
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.tokens.retain(|_, t| found.contains(&t.dir));
        for p in found {
            if slots.tokens.values().any(|t| t.dir == p) {
                continue;
            }
            let mut entry = match slots.aliases.values().find(|t| t.dir == p) {
                Some(t) => TokenSlot::opened(p.clone(), t.clone()),
                None => TokenSlot::new(p.clone()),
            };
            entry.softhsm2 = softhsm2.remove(&p);
            let mut id = slot_id_for(&p);
            while slots.tokens.contains_key(&id) {
                id = id.wrapping_add(1) & 0x7fff_ffff;
            }
            slots.tokens.insert(id, Arc::new(entry));
        }
        slots.place_free();
        Ok(())
    }

    /// `C_InitToken`.
    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> Result<()> {
        self.init_token_as(slot, so_pin, label, false)
    }

    /// `T_InitTestToken`: a new test token in the free slot (`config::TEST_KDF_ITERATIONS`), for
    /// a pipeline's throwaway tests. `CKR_ACTION_PROHIBITED` in the approved mode, and on a slot
    /// that holds a token (re-initialisation is `C_InitToken`'s).
    pub fn init_test_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> Result<()> {
        if self.cfg.mode == crate::policy::Mode::Approved {
            return Err(crate::error::Error::because(
                CKR_ACTION_PROHIBITED,
                format_args!("the approved mode makes no test tokens (their PINs derive with 1,000 iterations)"),
            ));
        }
        if !matches!(self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?, SlotContent::Free) {
            return Err(err(CKR_ACTION_PROHIBITED));
        }
        self.init_token_as(slot, so_pin, label, true)
    }

    fn init_token_as(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str, test: bool) -> Result<()> {
        let content = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        match content {
            // T_InitTestToken makes new tokens only (a token may have appeared since its check).
            SlotContent::Token(_) | SlotContent::Alias(_) if test => Err(err(CKR_ACTION_PROHIBITED)),
            SlotContent::Token(_) | SlotContent::Alias(_) => {
                let t = self.token(slot)?;
                if self.sessions_on(&t).0 > 0 {
                    return Err(err(CKR_SESSION_EXISTS));
                }
                t.reinit(so_pin, label)?;
                self.forget_token_handles(&t);
                Ok(())
            }
            SlotContent::Free => {
                let t = loop {
                    let serial = crate::object::template::hex(&crate::store::seal::random_bytes(8)?);
                    let id = slot_id_for(Path::new(&serial));
                    if id >= 0x1000 && !self.slots.read().unwrap_or_else(|p| p.into_inner()).in_use(id) {
                        break Token::create(
                            &self.cfg.tokendir,
                            &serial,
                            label,
                            so_pin,
                            self.kek.clone(),
                            self.pin_policy(),
                            test,
                        )?;
                    }
                };
                tracing::info!("token {} initialised", t.serial);
                {
                    let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
                    slots.aliases.insert(slot, t.clone());
                    let id = slot_id_for(&t.dir);
                    slots.tokens.insert(id, Arc::new(TokenSlot::opened(t.dir.clone(), t)));
                    slots.place_free();
                }
                Ok(())
            }
        }
    }

    /// The token in a slot; `CKR_TOKEN_NOT_RECOGNIZED` for the free slot's uninitialised token.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<Arc<Token>> {
        let content = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        match content {
            SlotContent::Token(s) => s.token(self),
            SlotContent::Alias(t) => Ok(t),
            SlotContent::Free => Err(err(CKR_TOKEN_NOT_RECOGNIZED)),
        }
    }

    /// (all sessions, read-write sessions) open on a token.
    pub fn sessions_on(&self, t: &Arc<Token>) -> (usize, usize) {
        use std::sync::atomic::Ordering::Acquire;
        (t.open_sessions.0.load(Acquire), t.open_sessions.1.load(Acquire))
    }
}
