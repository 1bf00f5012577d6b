//! Signed checkpoints: public verification of the log without the seed.
//!
//! A checkpoint is a note in the style of C2SP `tlog-checkpoint` and `signed-note`:
//!
//! ```text
//! tessera-audit/0123456789abcdef        the log's origin (from its public keys)
//! 1000                                  the tree size: records 0..999
//! <base64 Merkle root>                  RFC 9162 root over those records' lines (`merkle`)
//! head <64 hex>                         the MAC of record 999 (the keyed chain's head)
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
//! The writer appends a checkpoint as a record of its own (`"checkpoint": "<note>"`) at the
//! record whose `seq` is the tree size. The signing keys are made by `tessera-audit init` and
//! kept beside the log (`audit.sign`, mode 0600); the public keys go to the auditor
//! (`audit.pub`, `tessera-audit export-key`).
//!
//! What the signing keys do not give: forward security. They stay the same for the life of the
//! chain, so whoever takes the host (and reads `audit.sign`) can sign checkpoints over a history
//! of their own making. Checkpoints defend the past only where a copy of one is kept off the host
//! (`verify --trusted-checkpoint`): a log that does not extend it is named "rolled back" or
//! "Merkle mismatch". Records before the takeover stay protected by the keyed chain.

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

const SIGN_MAGIC: &[u8; 8] = b"TSAUDSK1";
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

/// The checkpoint signing keys, as the host keeps them.
pub struct SigningKeys {
    /// SSP: audit checkpoint ECDSA P-256 private key
    ecdsa: EcdsaKeyPair,
    /// SSP: audit checkpoint ML-DSA-65 private key
    mldsa: PqdsaKeyPair,
    public: PublicKeys,
}

impl SigningKeys {
    /// New keys from the DRBG.
    pub fn generate() -> Result<SigningKeys, Error> {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| Error::Bad("ECDSA P-256 key generation failed".into()))?;
        let ml = PqdsaKeyPair::generate(&ML_DSA_65_SIGNING)
            .map_err(|_| Error::Bad("ML-DSA-65 key generation failed".into()))?;
        let ml_der = Zeroizing::new(
            ml.to_pkcs8v1().map_err(|_| Error::Bad("ML-DSA-65 key encoding failed".into()))?.as_ref().to_vec(),
        );
        SigningKeys::from_pkcs8(ec.as_ref(), &ml_der)
    }

    fn from_pkcs8(ec: &[u8], ml: &[u8]) -> Result<SigningKeys, Error> {
        let ecdsa = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, ec)
            .map_err(|e| Error::Bad(format!("the ECDSA P-256 key: {e}")))?;
        let mldsa = PqdsaKeyPair::from_pkcs8(&ML_DSA_65_SIGNING, ml)
            .map_err(|e| Error::Bad(format!("the ML-DSA-65 key: {e}")))?;
        let public =
            PublicKeys { ecdsa: ecdsa.public_key().as_ref().to_vec(), mldsa: mldsa.public_key().as_ref().to_vec() };
        Ok(SigningKeys { ecdsa, mldsa, public })
    }

    pub fn public(&self) -> &PublicKeys {
        &self.public
    }

    /// The key file's bytes: magic, each key's PKCS #8 (a 4-byte big-endian length before it),
    /// SHA-256 over all that.
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let enc = |e| Error::Bad(format!("a signing key could not be encoded: {e:?}"));
        let ec = Zeroizing::new(self.ecdsa.to_pkcs8v1().map_err(enc)?.as_ref().to_vec());
        let ml = Zeroizing::new(self.mldsa.to_pkcs8v1().map_err(enc)?.as_ref().to_vec());
        let mut b = Zeroizing::new(Vec::with_capacity(16 + ec.len() + ml.len() + 32));
        b.extend_from_slice(SIGN_MAGIC);
        for k in [&ec, &ml] {
            b.extend_from_slice(&(k.len() as u32).to_be_bytes());
            b.extend_from_slice(k);
        }
        let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b);
        b.extend_from_slice(sum.as_ref());
        Ok(b)
    }

    fn decode(b: &[u8]) -> Result<SigningKeys, Error> {
        if b.len() < 8 + 4 + 4 + 32 || &b[..8] != SIGN_MAGIC {
            return bad("not a signing key file");
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref() != sum {
            return bad("the signing key file is damaged");
        }
        let mut rest = &body[8..];
        let mut take = || -> Result<&[u8], Error> {
            let n =
                u32::from_be_bytes(rest.get(..4).ok_or(Error::Bad("short".into()))?.try_into().expect("4")) as usize;
            let k = rest.get(4..4 + n).ok_or(Error::Bad("the signing key file is damaged".into()))?;
            rest = &rest[4 + n..];
            Ok(k)
        };
        let (ec, ml) = (take()?, take()?);
        SigningKeys::from_pkcs8(ec, ml)
    }

    /// Writes the keys to `dir/audit.sign` (mode 0600, created new) and the public keys to
    /// `dir/audit.pub`.
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

    /// The keys of the log in `dir`, if it has any.
    pub fn load(dir: &Path) -> Result<Option<SigningKeys>, Error> {
        let p = dir.join(SIGN);
        match std::fs::read(&p) {
            Ok(b) => {
                let b = Zeroizing::new(b);
                SigningKeys::decode(&b).map(Some).map_err(|e| Error::Bad(format!("{}: {e}", p.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Bad(format!("{}: {e}", p.display()))),
        }
    }

    /// Signs the checkpoint of a tree of `size` records with root `root` and chain head `head`.
    pub fn sign(&self, size: u64, root: &Hash, head: &Hash) -> Result<Note, Error> {
        let mut n = Note {
            origin: self.public.origin(),
            size,
            root: *root,
            head: *head,
            sig_ecdsa: Vec::new(),
            sig_mldsa: Vec::new(),
        };
        let body = n.body();
        let ec = self
            .ecdsa
            .sign(&SystemRandom::new(), body.as_bytes())
            .map_err(|_| Error::Bad("ECDSA P-256 signing failed".into()))?;
        n.sig_ecdsa = ec.as_ref().to_vec();
        let mut ml = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        let len =
            self.mldsa.sign(body.as_bytes(), &mut ml).map_err(|_| Error::Bad("ML-DSA-65 signing failed".into()))?;
        ml.truncate(len);
        n.sig_mldsa = ml;
        Ok(n)
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
    pub sig_ecdsa: Vec<u8>,
    pub sig_mldsa: Vec<u8>,
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
        format!(
            "{}\n{}\n{}\nhead {}\n",
            self.origin,
            self.size,
            Base64::encode_string(&self.root),
            crate::format::hex(&self.head)
        )
    }

    /// The whole note: the body, a blank line, the two signature lines (named by the key ids of
    /// `keys`).
    pub fn encode_with(&self, keys: &PublicKeys) -> String {
        let line = |alg: &str, public: &[u8], sig: &[u8]| {
            let mut b = key_id(alg, public).to_vec();
            b.extend_from_slice(sig);
            format!("\u{2014} {} {}\n", self.origin, Base64::encode_string(&b))
        };
        format!(
            "{}\n{}{}",
            self.body(),
            line(ALG_EC, &keys.ecdsa, &self.sig_ecdsa),
            line(ALG_ML, &keys.mldsa, &self.sig_mldsa)
        )
    }

    /// Parses a note and checks both signatures with `keys`.
    pub fn verify(text: &str, keys: &PublicKeys) -> Result<Note, NoteError> {
        let form = |s: &str| NoteError::Form(s.into());
        let (body, sigs) = text.split_once("\n\n").ok_or_else(|| form("no blank line between body and signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
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
        if lines.next().is_some() {
            return Err(form("unknown lines in the body"));
        }
        let mut note = Note { origin, size, root, head, sig_ecdsa: Vec::new(), sig_mldsa: Vec::new() };
        if note.body() != body {
            return Err(form("the body is not in its canonical form"));
        }
        if note.origin != keys.origin() {
            return Err(NoteError::Signature(format!("a checkpoint of another log ({})", note.origin)));
        }
        let (id_ec, id_ml) = (key_id(ALG_EC, &keys.ecdsa), key_id(ALG_ML, &keys.mldsa));
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
            if id == id_ec {
                note.sig_ecdsa = sig.to_vec();
            } else if id == id_ml {
                note.sig_mldsa = sig.to_vec();
            }
        }
        if note.sig_ecdsa.is_empty() || note.sig_mldsa.is_empty() {
            return Err(NoteError::Signature("the ECDSA P-256 and the ML-DSA-65 signature are both needed".into()));
        }
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &keys.ecdsa)
            .verify(body.as_bytes(), &note.sig_ecdsa)
            .map_err(|_| NoteError::Signature("the ECDSA P-256 signature does not verify".into()))?;
        UnparsedPublicKey::new(&ML_DSA_65, &keys.mldsa)
            .verify(body.as_bytes(), &note.sig_mldsa)
            .map_err(|_| NoteError::Signature("the ML-DSA-65 signature does not verify".into()))?;
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
        let note = keys.sign(1000, &[3; 32], &[4; 32]).unwrap();
        let text = note.encode_with(&public);
        let back = Note::verify(&text, &public).unwrap();
        assert_eq!((back.size, back.root, back.head), (1000, [3; 32], [4; 32]));
        // A changed size, a signature dropped, another log's keys.
        assert!(matches!(
            Note::verify(&text.replacen("\n1000\n", "\n999\n", 1), &public),
            Err(NoteError::Signature(_))
        ));
        let one: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert!(matches!(Note::verify(&one, &public), Err(NoteError::Signature(_))));
        let d2 = tempfile::tempdir().unwrap();
        let other = SigningKeys::create(d2.path()).unwrap();
        assert!(matches!(Note::verify(&text, other.public()), Err(NoteError::Signature(_))));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.path().join(SIGN)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
