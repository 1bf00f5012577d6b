//! Slots, as SoftHSMv2 lays them out: one slot per initialised token, with a slot ID stored in the
//! token (stable across restarts and processes), plus always one free slot holding an uninitialised
//! token; `C_InitToken` on the free slot creates a new token.

use crate::error::{err, Result};
use crate::module::Module;
use crate::store::DB_FILE;
use crate::token::Token;
use cryptoki_sys::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The slot table of this process.
#[derive(Default)]
pub struct Slots {
    /// Initialised tokens by slot ID.
    tokens: HashMap<CK_SLOT_ID, Arc<Token>>,
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
    Token(Arc<Token>),
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

    pub fn tokens(&self) -> Vec<Arc<Token>> {
        self.tokens.values().cloned().collect()
    }

    pub fn get(&self, id: CK_SLOT_ID) -> Result<SlotContent> {
        if let Some(t) = self.tokens.get(&id).or_else(|| self.aliases.get(&id)) {
            return Ok(SlotContent::Token(t.clone()));
        }
        if id == self.free {
            return Ok(SlotContent::Free);
        }
        Err(err(CKR_SLOT_ID_INVALID))
    }

    fn in_use(&self, id: CK_SLOT_ID) -> bool {
        self.tokens.contains_key(&id) || self.aliases.contains_key(&id)
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
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.tokens.retain(|_, t| found.contains(&t.dir));
        for p in found {
            if slots.tokens.values().any(|t| t.dir == p) {
                continue;
            }
            let existing = slots.aliases.values().find(|t| t.dir == p).cloned();
            let token = match existing {
                Some(t) => t,
                None => match Token::open(&p, self.kek.clone(), self.pin_policy()) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!("token {} cannot be opened: {e}", p.display());
                        continue;
                    }
                },
            };
            let mut id = token.row()?.slot_id;
            while slots.tokens.contains_key(&id) {
                id = id.wrapping_add(1) & 0x7fff_ffff;
            }
            slots.tokens.insert(id, token);
        }
        slots.place_free();
        Ok(())
    }

    /// `C_InitToken`.
    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &[u8], label: &str) -> Result<()> {
        let content = self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)?;
        match content {
            SlotContent::Token(t) => {
                if self.sessions_on(&t).0 > 0 {
                    return Err(err(CKR_SESSION_EXISTS));
                }
                t.reinit(so_pin, label)?;
                self.forget_token_handles(&t);
                Ok(())
            }
            SlotContent::Free => {
                let stable = loop {
                    let r = crate::store::seal::random_bytes(4)?;
                    let id = (u32::from_be_bytes([r[0], r[1], r[2], r[3]]) & 0x7fff_ffff) as CK_SLOT_ID;
                    if id >= 0x1000 && !self.slots.read().unwrap_or_else(|p| p.into_inner()).in_use(id) {
                        break id;
                    }
                };
                let t = Token::create(&self.cfg.tokendir, label, so_pin, stable, self.kek.clone(), self.pin_policy())?;
                tracing::info!("token {} initialised in slot {stable}", t.serial);
                {
                    let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
                    slots.aliases.insert(slot, t.clone());
                    slots.tokens.insert(stable, t);
                    slots.place_free();
                }
                Ok(())
            }
        }
    }

    /// The token in a slot; `CKR_TOKEN_NOT_RECOGNIZED` for the free slot's uninitialised token.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<Arc<Token>> {
        match self.slots.read().unwrap_or_else(|p| p.into_inner()).get(slot)? {
            SlotContent::Token(t) => Ok(t),
            SlotContent::Free => Err(err(CKR_TOKEN_NOT_RECOGNIZED)),
        }
    }

    /// (all sessions, read-write sessions) open on a token.
    pub fn sessions_on(&self, t: &Arc<Token>) -> (usize, usize) {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        let mut all = 0;
        let mut rw = 0;
        for s in sessions.values() {
            if Arc::ptr_eq(&s.token, t) {
                all += 1;
                rw += s.rw as usize;
            }
        }
        (all, rw)
    }
}
