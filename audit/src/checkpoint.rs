//! Signed checkpoints: public verification of the log without the seed.
//!
//! A checkpoint is a note in the style of C2SP `tlog-checkpoint` and `signed-note`:
//!
//! ```text
//! tessera-audit/0123456789abcdef        the log's origin (from its anchor public keys)
//! 1000                                  the tree size: records 0..999
//! <base64 Merkle root>                  RFC 9162 root over those records' lines (`merkle`)
//! head <64 hex>                         the MAC of record 999 (the keyed chain's head)
//! key 7                                 the generation of the key pair that signs this note
//! next 8 <base64 P-256> <base64 ML-DSA> the public keys of the pair that signs the next one
//!
//! — tessera-audit/0123456789abcdef <base64(key id || ECDSA P-256 signature)>
//! — tessera-audit/0123456789abcdef <base64(key id || ML-DSA-65 signature)>
//! ```
//!
//! Both signatures are over the body (the lines before the blank line, each with its `\n`):
//! ECDSA P-256 with SHA-256 (ASN.1 DER) and ML-DSA-65 (FIPS 204, pure, empty context). A
//! checkpoint verifies only if both do, so it holds while either algorithm does. The key id is
//! the first 4 bytes of SHA-256 over `"tessera-audit " || algorithm name || "\n" || public key`.
//!
//! **Forward security.** `tessera-audit init` makes the anchor pair (generation 0), whose public
//! half goes to the auditor (`audit.pub`, `tessera-audit export-key`) and names the log (its
//! origin). Each checkpoint is signed by the pair of its generation and certifies, in its signed
//! body (`next`), the public keys of a fresh pair that signs the next checkpoint; once the
//! checkpoint is in the log the writer replaces the stored private keys with the new pair
//! ([`SigningKeys::commit`]) and the old ones are gone. Whoever takes the host later holds only
//! the pair for the next checkpoint: a checkpoint over anything an earlier one covered would have
//! to be signed by a key that no longer exists (the verifier follows the chain from the anchor,
//! [`crate::keychain`]).
//!
//! Notes of the first format (no `key` and `next` lines) were all signed by the one pair `init`
//! made; they still verify under the anchor keys, without forward security.
//!
//! The writer appends a checkpoint as a record of its own (`"checkpoint": "<note>"`) at the
//! record whose `seq` is the tree size, and each note that certifies a key also to the key chain
//! file (`audit.keys`, [`crate::keychain`]), which retention never deletes.

use crate::merkle::Hash;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, KeyPair, PqdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1_SIGNING, ML_DSA_65,
    ML_DSA_65_SIGNING,
};
use base64ct::{Base64, Encoding};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The signing keys' file name in the log directory (mode 0600).
pub const SIGN: &str = "audit.sign";
/// The public keys' file name (written by `init`; for the auditor).
pub const PUB: &str = "audit.pub";

/// The pending next pair's file name (between a checkpoint's key generation and its commit).
pub const SIGN_NEXT: &str = "audit.sign.next";

const SIGN_MAGIC_V1: &[u8; 8] = b"TSAUDSK1";
const SIGN_MAGIC: &[u8; 8] = b"TSAUDSK2";
const PUB_HEADER: &str = "tessera-audit public key v1";
const ALG_EC: &str = "ecdsa-p256";
const ALG_ML: &str = "ml-dsa-65";

/// Why a key file or a note could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Bad(String),
}

fn bad<T>(what: impl Into<String>) -> Result<T, Error> {
    Err(Error::Bad(what.into()))
}

fn key_id(alg: &str, public: &[u8]) -> [u8; 4] {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[b"tessera-audit ", alg.as_bytes(), b"\n", public].concat(),
    );
    d.as_ref()[..4].try_into().expect("4 bytes")
}

/// The public keys of a log: what an auditor needs to check its checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeys {
    /// The uncompressed P-256 point.
    pub ecdsa: Vec<u8>,
    /// The raw ML-DSA-65 public key.
    pub mldsa: Vec<u8>,
}

impl PublicKeys {
    /// The log's origin, the first line of its checkpoints: named by its keys.
    pub fn origin(&self) -> String {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &[&b"tessera-audit origin v1\n"[..], &self.ecdsa, &self.mldsa].concat(),
        );
        format!("tessera-audit/{}", crate::format::hex(&d.as_ref()[..8]))
    }

    /// The public key file's text.
    pub fn encode(&self) -> String {
        format!(
            "{PUB_HEADER}\norigin {}\n{ALG_EC} {}\n{ALG_ML} {}\n",
            self.origin(),
            Base64::encode_string(&self.ecdsa),
            Base64::encode_string(&self.mldsa)
        )
    }

    pub fn decode(text: &str) -> Result<PublicKeys, Error> {
        let mut lines = text.lines();
        if lines.next() != Some(PUB_HEADER) {
            return bad(format!("not a public key file (it begins `{PUB_HEADER}`)"));
        }
        let (mut origin, mut ec, mut ml) = (None, None, None);
        for l in lines {
            let Some((k, v)) = l.split_once(' ') else { return bad(format!("a line without a value: {l}")) };
            let val = || Base64::decode_vec(v).map_err(|_| Error::Bad(format!("{k}: not base64")));
            match k {
                "origin" => origin = Some(v.to_string()),
                ALG_EC => ec = Some(val()?),
                ALG_ML => ml = Some(val()?),
                _ => return bad(format!("unknown line `{k}`")),
            }
        }
        let (Some(origin), Some(ecdsa), Some(mldsa)) = (origin, ec, ml) else {
            return bad("the origin, the ECDSA P-256 key and the ML-DSA-65 key are all needed");
        };
        let keys = PublicKeys { ecdsa, mldsa };
        if keys.origin() != origin {
            return bad("the origin does not match the keys");
        }
        Ok(keys)
    }

    pub fn read(path: &Path) -> Result<PublicKeys, Error> {
        PublicKeys::decode(&std::fs::read_to_string(path)?)
    }
}

/// The checkpoint signing keys of one generation, as the host keeps them.
///
/// Private keys live in aws-lc's key objects, which clear them when freed (aws-lc's
/// `OPENSSL_free` overwrites every allocation before releasing it); their PKCS #8 encodings are
/// held in [`Zeroizing`] buffers.
pub struct SigningKeys {
    /// SSP: audit checkpoint ECDSA P-256 private key
    ecdsa: EcdsaKeyPair,
    /// SSP: audit checkpoint ML-DSA-65 private key
    mldsa: PqdsaKeyPair,
    public: PublicKeys,
    /// The generation: 0 for the anchor pair `init` made, one more for each pair certified.
    gen: u64,
    /// Whether the pair was read from a key file of the first format (one pair for life).
    legacy: bool,
    /// For a pending pair (`audit.sign.next`): the log file number and offset where the
    /// checkpoint that certifies it begins.
    at: (u64, u64),
    /// The log's origin (its anchor keys' name), which every note of the log carries.
    origin: String,
}

fn enc_err(e: impl std::fmt::Debug) -> Error {
    Error::Bad(format!("a signing key could not be encoded: {e:?}"))
}

impl SigningKeys {
    /// A new pair from the DRBG, of generation `gen`.
    fn generate_gen(gen: u64) -> Result<SigningKeys, Error> {
        let rng = SystemRandom::new();
        // `Document` clears its bytes when dropped.
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| Error::Bad("ECDSA P-256 key generation failed".into()))?;
        let ml = PqdsaKeyPair::generate(&ML_DSA_65_SIGNING)
            .map_err(|_| Error::Bad("ML-DSA-65 key generation failed".into()))?;
        let ml_der = Zeroizing::new(
            ml.to_pkcs8v1().map_err(|_| Error::Bad("ML-DSA-65 key encoding failed".into()))?.as_ref().to_vec(),
        );
        SigningKeys::from_pkcs8(ec.as_ref(), &ml_der, gen, None)
    }

    /// New anchor keys (generation 0) from the DRBG.
    pub fn generate() -> Result<SigningKeys, Error> {
        SigningKeys::generate_gen(0)
    }

    /// A fresh pair of the next generation, to be certified by this one's next checkpoint.
    pub fn generate_next(&self) -> Result<SigningKeys, Error> {
        let mut k = SigningKeys::generate_gen(self.gen + 1)?;
        k.origin = self.origin.clone();
        Ok(k)
    }

    /// `origin`: the log's (`None`: these are the anchor keys, which name it).
    fn from_pkcs8(ec: &[u8], ml: &[u8], gen: u64, origin: Option<String>) -> Result<SigningKeys, Error> {
        let ecdsa = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ec)
            .map_err(|e| Error::Bad(format!("the ECDSA P-256 key: {e}")))?;
        let mldsa = PqdsaKeyPair::from_pkcs8(&ML_DSA_65_SIGNING, ml)
            .map_err(|e| Error::Bad(format!("the ML-DSA-65 key: {e}")))?;
        let public =
            PublicKeys { ecdsa: ecdsa.public_key().as_ref().to_vec(), mldsa: mldsa.public_key().as_ref().to_vec() };
        let origin = origin.unwrap_or_else(|| public.origin());
        Ok(SigningKeys { ecdsa, mldsa, public, gen, legacy: false, at: (0, 0), origin })
    }

    pub fn public(&self) -> &PublicKeys {
        &self.public
    }

    /// The generation of this pair (0: the anchor).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// The key file's bytes: `"TSAUDSK2"`, the generation, the pending position (file number,
    /// offset, kept in `audit.sign` once committed) (u64 BE each), each key's PKCS #8 and the log's origin
    /// (each with a 4-byte big-endian length before it), SHA-256 over all that.
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let ec = Zeroizing::new(self.ecdsa.to_pkcs8v1().map_err(enc_err)?.as_ref().to_vec());
        let ml = Zeroizing::new(self.mldsa.to_pkcs8v1().map_err(enc_err)?.as_ref().to_vec());
        let mut b = Zeroizing::new(Vec::with_capacity(40 + 8 + ec.len() + ml.len() + 32));
        b.extend_from_slice(SIGN_MAGIC);
        for n in [self.gen, self.at.0, self.at.1] {
            b.extend_from_slice(&n.to_be_bytes());
        }
        for k in [&ec[..], &ml[..], self.origin.as_bytes()] {
            b.extend_from_slice(&(k.len() as u32).to_be_bytes());
            b.extend_from_slice(k);
        }
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b);
        b.extend_from_slice(sum.as_ref());
        Ok(b)
    }

    /// A key file of either format (the first: `"TSAUDSK1"`, no generation: the anchor pair,
    /// used for life).
    fn decode(b: &[u8]) -> Result<SigningKeys, Error> {
        let (legacy, fixed) = match b.get(..8) {
            Some(m) if m == SIGN_MAGIC => (false, 32),
            Some(m) if m == SIGN_MAGIC_V1 => (true, 8),
            _ => return bad("not a signing key file"),
        };
        if b.len() < fixed + 4 + 4 + 32 {
            return bad("not a signing key file");
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref() != sum {
            return bad("the signing key file is damaged");
        }
        let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().expect("8 bytes"));
        let (gen, at) = if legacy { (0, (0, 0)) } else { (u64_at(8), (u64_at(16), u64_at(24))) };
        let mut rest = &body[fixed..];
        let mut take = || -> Result<&[u8], Error> {
            let damaged = || Error::Bad("the signing key file is damaged".into());
            let n = u32::from_be_bytes(rest.get(..4).ok_or_else(damaged)?.try_into().expect("4")) as usize;
            let k = rest.get(4..4 + n).ok_or_else(damaged)?;
            rest = &rest[4 + n..];
            Ok(k)
        };
        let (ec, ml) = (take()?, take()?);
        let origin = if legacy {
            None
        } else {
            Some(
                String::from_utf8(take()?.to_vec())
                    .map_err(|_| Error::Bad("the signing key file is damaged".into()))?,
            )
        };
        let mut keys = SigningKeys::from_pkcs8(ec, ml, gen, origin)?;
        keys.legacy = legacy;
        keys.at = at;
        Ok(keys)
    }

    /// Writes the anchor keys to `dir/audit.sign` (mode 0600, created new) and their public
    /// half to `dir/audit.pub`.
    pub fn create(dir: &Path) -> Result<SigningKeys, Error> {
        let keys = SigningKeys::generate()?;
        let open = |p: &Path, mode| OpenOptions::new().write(true).create_new(true).mode(mode).open(p);
        let mut f = open(&dir.join(SIGN), 0o600)?;
        f.write_all(&keys.encode()?)?;
        f.sync_all()?;
        let mut p = open(&dir.join(PUB), 0o644)?;
        p.write_all(keys.public.encode().as_bytes())?;
        p.sync_all()?;
        Ok(keys)
    }

    fn load_file(p: &Path) -> Result<Option<SigningKeys>, Error> {
        match std::fs::read(p) {
            Ok(b) => {
                let b = Zeroizing::new(b);
                SigningKeys::decode(&b).map(Some).map_err(|e| Error::Bad(format!("{}: {e}", p.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Bad(format!("{}: {e}", p.display()))),
        }
    }

    /// The current keys of the log in `dir`, if it has any. The writer reads them under the
    /// log's lock, for one checkpoint, and drops them right after.
    pub fn load(dir: &Path) -> Result<Option<SigningKeys>, Error> {
        SigningKeys::load_file(&dir.join(SIGN))
    }

    /// The pending next pair (`audit.sign.next`) a writer stopped before its commit left.
    pub fn load_pending(dir: &Path) -> Result<Option<SigningKeys>, Error> {
        SigningKeys::load_file(&dir.join(SIGN_NEXT))
    }

    /// Where the checkpoint that certifies this pending pair begins: (log file number, offset).
    pub fn pending_at(&self) -> (u64, u64) {
        self.at
    }

    /// Writes this pair as the pending next one (`audit.sign.next`, 0600, synced), to be
    /// certified by the checkpoint that begins at `at` (log file number, offset). Written before
    /// that checkpoint, so that a writer stopped after it leaves the certified private key.
    pub fn store_pending(&mut self, dir: &Path, at: (u64, u64)) -> Result<(), Error> {
        self.at = at;
        let p = dir.join(SIGN_NEXT);
        // A pending pair left by a checkpoint that was never written.
        scrub(&p);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p)?;
        f.write_all(&self.encode()?)?;
        f.sync_all()?;
        Ok(())
    }

    /// Makes the pending pair (`audit.sign.next`) the current one: renamed over `audit.sign`
    /// (atomic), the directory synced, then the old key file's blocks overwritten with zeros
    /// through a descriptor opened before the rename (on a file system that writes in place;
    /// see the security policy for SSDs and copy-on-write file systems).
    pub fn commit(dir: &Path) -> std::io::Result<()> {
        let (cur, next) = (dir.join(SIGN), dir.join(SIGN_NEXT));
        let old = OpenOptions::new().write(true).open(&cur).ok();
        std::fs::rename(&next, &cur)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
        if let Some(f) = old {
            overwrite(&f);
        }
        Ok(())
    }

    /// Drops a pending pair whose checkpoint was never written: overwritten, then removed.
    pub fn discard_pending(dir: &Path) {
        scrub(&dir.join(SIGN_NEXT));
    }

    /// Whether this pair came from a key file of the first format.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Signs the checkpoint of a tree of `size` records with root `root` and chain head `head`;
    /// `next`: the public keys of the pair that signs the next checkpoint (certified here; `None`
    /// gives a note of the first format).
    pub fn sign(&self, size: u64, root: &Hash, head: &Hash, next: Option<&PublicKeys>) -> Result<Note, Error> {
        let mut n = Note {
            origin: self.origin.clone(),
            size,
            root: *root,
            head: *head,
            key_gen: next.map(|_| self.gen),
            next: next.map(|k| (self.gen + 1, k.clone())),
            sigs: Vec::new(),
        };
        self.sign_note(&mut n)?;
        Ok(n)
    }

    /// Signs `n`'s body as it stands.
    fn sign_note(&self, n: &mut Note) -> Result<(), Error> {
        let body = n.body();
        let ec = self
            .ecdsa
            .sign(&SystemRandom::new(), body.as_bytes())
            .map_err(|_| Error::Bad("ECDSA P-256 signing failed".into()))?;
        let mut ml = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        let len =
            self.mldsa.sign(body.as_bytes(), &mut ml).map_err(|_| Error::Bad("ML-DSA-65 signing failed".into()))?;
        ml.truncate(len);
        n.sigs =
            vec![(key_id(ALG_EC, &self.public.ecdsa), ec.as_ref().to_vec()), (key_id(ALG_ML, &self.public.mldsa), ml)];
        Ok(())
    }

    /// Signs an arbitrary note body with this pair (the tamper corpus: a note re-signed).
    pub fn resign(&self, n: &mut Note) -> Result<(), Error> {
        self.sign_note(n)
    }
}

/// Overwrites a file's bytes with zeros and syncs them (best effort: see [`SigningKeys::commit`]).
fn overwrite(f: &std::fs::File) {
    use std::os::unix::fs::FileExt;
    if let Ok(m) = f.metadata() {
        let _ = f.write_all_at(&vec![0u8; m.len() as usize], 0).and_then(|()| f.sync_data());
    }
}

/// Overwrites and removes a key file, if there is one.
fn scrub(p: &Path) {
    if let Ok(f) = OpenOptions::new().write(true).open(p) {
        overwrite(&f);
        let _ = std::fs::remove_file(p);
    }
}

/// A checkpoint note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub origin: String,
    /// The tree size: records `0..size`.
    pub size: u64,
    pub root: Hash,
    /// The MAC of record `size - 1` (zeros for an empty tree).
    pub head: Hash,
    /// The generation of the pair that signs it (`None`: a note of the first format).
    pub key_gen: Option<u64>,
    /// The generation and public keys of the pair it certifies for the next checkpoint.
    pub next: Option<(u64, PublicKeys)>,
    /// The signature lines of its origin: key id and signature.
    pub sigs: Vec<([u8; 4], Vec<u8>)>,
}

/// Why a checkpoint does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// Not a checkpoint note.
    Form(String),
    /// Another log's checkpoint, or a signature that does not verify.
    Signature(String),
}

impl std::fmt::Display for NoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoteError::Form(s) | NoteError::Signature(s) => f.write_str(s),
        }
    }
}

impl Note {
    /// The signed body.
    pub fn body(&self) -> String {
        let mut b = format!(
            "{}\n{}\n{}\nhead {}\n",
            self.origin,
            self.size,
            Base64::encode_string(&self.root),
            crate::format::hex(&self.head)
        );
        if let Some(g) = self.key_gen {
            b.push_str(&format!("key {g}\n"));
        }
        if let Some((g, k)) = &self.next {
            b.push_str(&format!("next {g} {} {}\n", Base64::encode_string(&k.ecdsa), Base64::encode_string(&k.mldsa)));
        }
        b
    }

    /// The whole note: the body, a blank line, its signature lines.
    pub fn encode(&self) -> String {
        let mut s = format!("{}\n", self.body());
        for (id, sig) in &self.sigs {
            let mut b = id.to_vec();
            b.extend_from_slice(sig);
            s.push_str(&format!("\u{2014} {} {}\n", self.origin, Base64::encode_string(&b)));
        }
        s
    }

    /// Parses a note (its form only: no signature is checked).
    pub fn parse(text: &str) -> Result<Note, NoteError> {
        let form = |s: &str| NoteError::Form(s.into());
        let (body, sigs) = text.split_once("\n\n").ok_or_else(|| form("no blank line between body and signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines().peekable();
        let origin = lines.next().ok_or_else(|| form("no origin"))?.to_string();
        let size: u64 = lines.next().and_then(|s| s.parse().ok()).ok_or_else(|| form("no tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|s| Base64::decode_vec(s).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| form("no root hash"))?;
        let head = lines
            .next()
            .and_then(|s| s.strip_prefix("head "))
            .and_then(|h| crate::format::unhex32(h.as_bytes()))
            .ok_or_else(|| form("no chain head"))?;
        let mut key_gen = None;
        if let Some(g) = lines.peek().and_then(|l| l.strip_prefix("key ")) {
            key_gen = Some(g.parse::<u64>().map_err(|_| form("a key generation that is no number"))?);
            lines.next();
        }
        let mut next = None;
        if let Some(rest) = lines.peek().and_then(|l| l.strip_prefix("next ")) {
            let mut w = rest.split(' ');
            let g = w.next().and_then(|g| g.parse::<u64>().ok());
            let ec = w.next().and_then(|k| Base64::decode_vec(k).ok());
            let ml = w.next().and_then(|k| Base64::decode_vec(k).ok());
            let (Some(g), Some(ecdsa), Some(mldsa), None) = (g, ec, ml, w.next()) else {
                return Err(form("a `next` line that is not a generation and two public keys"));
            };
            next = Some((g, PublicKeys { ecdsa, mldsa }));
            lines.next();
        }
        if lines.next().is_some() {
            return Err(form("unknown lines in the body"));
        }
        if key_gen.is_some() != next.is_some() {
            return Err(form("a `key` line without a `next` line, or the other way round"));
        }
        let mut note = Note { origin, size, root, head, key_gen, next, sigs: Vec::new() };
        if note.body() != body {
            return Err(form("the body is not in its canonical form"));
        }
        for l in sigs.lines() {
            let Some(rest) = l.strip_prefix("\u{2014} ") else { return Err(form("a signature line without its dash")) };
            let Some((name, sig)) = rest.split_once(' ') else { return Err(form("a signature line without a name")) };
            if name != note.origin {
                continue;
            }
            let b = Base64::decode_vec(sig).map_err(|_| form("a signature that is not base64"))?;
            if b.len() < 4 {
                return Err(form("a signature line too short"));
            }
            let (id, sig) = b.split_at(4);
            note.sigs.push((id.try_into().expect("4 bytes"), sig.to_vec()));
        }
        Ok(note)
    }

    /// Whether both signatures (ECDSA P-256 and ML-DSA-65) verify under `keys`.
    pub fn signed_by(&self, keys: &PublicKeys) -> bool {
        let body = self.body();
        let (id_ec, id_ml) = (key_id(ALG_EC, &keys.ecdsa), key_id(ALG_ML, &keys.mldsa));
        let ec = self.sigs.iter().filter(|(id, _)| *id == id_ec).any(|(_, s)| {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &keys.ecdsa).verify(body.as_bytes(), s).is_ok()
        });
        ec && self
            .sigs
            .iter()
            .filter(|(id, _)| *id == id_ml)
            .any(|(_, s)| UnparsedPublicKey::new(&ML_DSA_65, &keys.mldsa).verify(body.as_bytes(), s).is_ok())
    }

    /// Parses a note and checks both signatures with `keys`, which must be the log's anchor
    /// keys (its origin's): a note of the first format, or the first of the chain (generation
    /// 0). Later notes are checked along the key chain ([`crate::keychain`]).
    pub fn verify(text: &str, keys: &PublicKeys) -> Result<Note, NoteError> {
        let note = Note::parse(text)?;
        if note.origin != keys.origin() {
            return Err(NoteError::Signature(format!("a checkpoint of another log ({})", note.origin)));
        }
        if !note.signed_by(keys) {
            return Err(NoteError::Signature(
                "the ECDSA P-256 and the ML-DSA-65 signature do not both verify under these keys".into(),
            ));
        }
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_note_verifies_and_a_changed_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let keys = SigningKeys::create(d.path()).unwrap();
        let again = SigningKeys::load(d.path()).unwrap().unwrap();
        assert_eq!(keys.public(), again.public());
        let public = PublicKeys::read(&d.path().join(PUB)).unwrap();
        assert_eq!(&public, keys.public());
        let next = keys.generate_next().unwrap();
        let note = keys.sign(1000, &[3; 32], &[4; 32], Some(next.public())).unwrap();
        let text = note.encode();
        let back = Note::verify(&text, &public).unwrap();
        assert_eq!((back.size, back.root, back.head, back.key_gen), (1000, [3; 32], [4; 32], Some(0)));
        assert_eq!(back.next, Some((1, next.public().clone())));
        assert!(!back.signed_by(next.public()));
        // A changed size, a changed certified key, a signature dropped, another log's keys.
        assert!(matches!(
            Note::verify(&text.replacen("\n1000\n", "\n999\n", 1), &public),
            Err(NoteError::Signature(_))
        ));
        assert!(matches!(
            Note::verify(&text.replacen("\nnext 1 ", "\nnext 2 ", 1), &public),
            Err(NoteError::Signature(_))
        ));
        let one: String = text.lines().take(text.lines().count() - 1).map(|l| format!("{l}\n")).collect();
        assert!(matches!(Note::verify(&one, &public), Err(NoteError::Signature(_))));
        let d2 = tempfile::tempdir().unwrap();
        let other = SigningKeys::create(d2.path()).unwrap();
        assert!(matches!(Note::verify(&text, other.public()), Err(NoteError::Signature(_))));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.path().join(SIGN)).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_pending_pair_is_committed_and_the_old_file_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let keys = SigningKeys::create(d.path()).unwrap();
        let mut next = keys.generate_next().unwrap();
        next.store_pending(d.path(), (3, 1234)).unwrap();
        let p = SigningKeys::load_pending(d.path()).unwrap().unwrap();
        assert_eq!((p.generation(), p.pending_at(), p.public()), (1, (3, 1234), next.public()));
        SigningKeys::commit(d.path()).unwrap();
        assert!(SigningKeys::load_pending(d.path()).unwrap().is_none());
        let cur = SigningKeys::load(d.path()).unwrap().unwrap();
        assert_eq!((cur.generation(), cur.public()), (1, next.public()));
        // The next pair signs notes of the anchor's log.
        let n = cur.sign(5, &[0; 32], &[0; 32], None).unwrap();
        assert_eq!(n.origin, keys.public().origin());
        // A pending pair discarded: overwritten and removed.
        let mut again = cur.generate_next().unwrap();
        again.store_pending(d.path(), (1, 0)).unwrap();
        SigningKeys::discard_pending(d.path());
        assert!(!d.path().join(SIGN_NEXT).exists());
        assert_eq!(SigningKeys::load(d.path()).unwrap().unwrap().generation(), 1);
    }
}
