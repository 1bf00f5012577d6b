//! The writer's Merkle frontier (`audit.tree`, beside the log): the tree over the records up to
//! the last checkpoint, so that the next checkpoint hashes only the records written since.
//!
//! Layout: `"TSAUDTR1"`, the tree size (u64 BE), the log offset where record `size` begins (u64
//! BE), the frontier's hashes (32 bytes each, one per bit set in the size), SHA-256 over
//! everything before it. The file holds nothing secret and is only a cache: one that is
//! missing, damaged, or ahead of the log is built again from the log. A frontier an attacker
//! altered gives checkpoints whose roots the verifier, which hashes the log itself, names
//! "Merkle mismatch".

use crate::merkle::{self, Frontier, Hash};
use crate::writer::Error;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const TREE: &str = "audit.tree";
const MAGIC: &[u8; 8] = b"TSAUDTR1";

fn decode(b: &[u8]) -> Option<(Frontier, u64)> {
    if b.len() < 8 + 16 + 32 || &b[..8] != MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref() != sum {
        return None;
    }
    let size = u64::from_be_bytes(body[8..16].try_into().ok()?);
    let offset = u64::from_be_bytes(body[16..24].try_into().ok()?);
    let rest = &body[24..];
    if rest.len() % 32 != 0 {
        return None;
    }
    let hashes = rest.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
    Some((Frontier::from_parts(size, hashes)?, offset))
}

fn encode(f: &Frontier, offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + 32 * f.hashes().len() + 32);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&f.size().to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    for h in f.hashes() {
        b.extend_from_slice(h);
    }
    let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b);
    b.extend_from_slice(sum.as_ref());
    b
}

/// Called with the number of bytes each read of [`scan_lines`] took in: the command line's
/// progress bar sets it (on a terminal); the module never does.
pub static PROGRESS: std::sync::OnceLock<Box<dyn Fn(u64) + Send + Sync>> = std::sync::OnceLock::new();

/// Calls `each` with every line (without its `\n`) of `file` between byte offsets `from` and
/// `to`, reading 1 MiB at a time; the offset where the last whole line ended.
pub fn scan_lines(file: &File, from: u64, to: u64, mut each: impl FnMut(&[u8])) -> std::io::Result<u64> {
    const CHUNK: usize = 1 << 20;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut pos = from;
    let mut done = from;
    while pos < to {
        let keep = buf.len();
        let n = ((to - pos) as usize).min(CHUNK);
        buf.resize(keep + n, 0);
        file.read_exact_at(&mut buf[keep..], pos)?;
        pos += n as u64;
        if let Some(p) = PROGRESS.get() {
            p(n as u64);
        }
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
            each(&buf[start..start + end]);
            start += end + 1;
        }
        done += start as u64;
        buf.drain(..start);
    }
    Ok(done)
}

/// The frontier over the log's first `size` records, which end at byte `log_len`: the saved
/// one extended with the records written since, or one built from the whole log.
pub fn extend(dir: &Path, log: &File, size: u64, log_len: u64) -> Result<Frontier, Error> {
    let saved = std::fs::read(dir.join(TREE)).ok().and_then(|b| decode(&b));
    let starts = saved.into_iter().filter(|(f, off)| f.size() <= size && *off <= log_len).chain([(Frontier::new(), 0)]);
    for (mut f, offset) in starts {
        let end = scan_lines(log, offset, log_len, |line| f.push(merkle::leaf(line)))
            .map_err(|e| Error::Io(dir.join(crate::writer::LOG), e))?;
        if end == log_len && f.size() == size {
            return Ok(f);
        }
        if offset == 0 {
            break;
        }
        tracing::warn!("{}: the saved Merkle frontier does not fit the log; built again", dir.join(TREE).display());
    }
    Err(Error::Unsafe(dir.into(), format!("the log does not hold {size} whole records in its {log_len} bytes")))
}

/// Saves the frontier (a cache: a failure only costs the next checkpoint a rebuild).
pub fn save(dir: &Path, f: &Frontier, offset: u64) {
    let p = dir.join(TREE);
    let tmp = dir.join(format!("{TREE}.tmp"));
    let r = std::fs::write(&tmp, encode(f, offset)).and_then(|()| std::fs::rename(&tmp, &p));
    if let Err(e) = r {
        tracing::warn!("{}: {e}", p.display());
    }
}

/// The root over record lines (each without its `\n`).
pub fn root_of(lines: &[&[u8]]) -> Hash {
    let mut f = Frontier::new();
    for l in lines {
        f.push(merkle::leaf(l));
    }
    f.root()
}
