//! The writer's Merkle frontier (`audit.tree`, beside the log): the tree over the records up to
//! the last checkpoint, so that the next checkpoint hashes only the records written since.
//!
//! Layout: `"TSAUDTR2"`, the tree size (u64 BE), the number of the log file where record `size`
//! is (u64 BE; the current file's number, see `state`), the offset there where it begins (u64
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
const MAGIC: &[u8; 8] = b"TSAUDTR2";

fn decode(b: &[u8]) -> Option<(Frontier, u64, u64)> {
    if b.len() < 8 + 24 + 32 || &b[..8] != MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body).as_ref() != sum {
        return None;
    }
    let size = u64::from_be_bytes(body[8..16].try_into().ok()?);
    let file = u64::from_be_bytes(body[16..24].try_into().ok()?);
    let offset = u64::from_be_bytes(body[24..32].try_into().ok()?);
    let rest = &body[32..];
    if rest.len() % 32 != 0 {
        return None;
    }
    let hashes = rest.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect();
    Some((Frontier::from_parts(size, hashes)?, file, offset))
}

fn encode(f: &Frontier, file: u64, offset: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(32 + 32 * f.hashes().len() + 32);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&f.size().to_be_bytes());
    b.extend_from_slice(&file.to_be_bytes());
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

/// The retention (`audit.keep_files`) a rotation record's writer had: files before it may have
/// been deleted only if it is not 0.
pub fn retention_of(line: &[u8]) -> Option<u64> {
    continuation(line)?;
    let (covered, _) = crate::format::split(line)?;
    let mut obj = covered.to_vec();
    obj.push(b'}');
    let r: crate::Record = serde_json::from_slice(&obj).ok()?;
    r.continues?.split(' ').nth(3)?.strip_prefix("keep=")?.parse().ok()
}

/// [`scan_lines`] over several files in turn (a rotated log, oldest first), each whole.
pub fn scan_files(files: &[std::path::PathBuf], mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    for p in files {
        let f = File::open(p)?;
        let len = f.metadata()?.len();
        scan_lines(&f, 0, len, &mut each)?;
    }
    Ok(())
}

/// The frontier a rotation record carries (`continues`: name, size, hashes), if `line` is one.
pub fn continuation(line: &[u8]) -> Option<Frontier> {
    let (covered, _) = crate::format::split(line)?;
    let mut obj = covered.to_vec();
    obj.push(b'}');
    let r: crate::Record = serde_json::from_slice(&obj).ok()?;
    let text = r.continues?;
    let mut parts = text.split(' ');
    let (_name, size, hashes) = (parts.next()?, parts.next()?.parse::<u64>().ok()?, parts.next().unwrap_or(""));
    // A fourth field, `keep=K`, is the retention the writer had (`retention_of`).
    let hashes: Vec<Hash> = if hashes.is_empty() {
        Vec::new()
    } else {
        hashes.split(',').map(|h| crate::format::unhex32(h.as_bytes())).collect::<Option<_>>()?
    };
    (size == r.seq).then_some(())?;
    Frontier::from_parts(size, hashes)
}

/// The frontier over the log's first `size` records, which end at byte `log_len` of the
/// current file (number `file_no`): the saved one extended with the records written since
/// (across the rotated files in between), or one built from the current file's rotation record
/// (or from the start, for the first file).
pub fn extend(dir: &Path, file_no: u64, log: &File, size: u64, log_len: u64) -> Result<Frontier, Error> {
    let io = |p: std::path::PathBuf| move |e| Error::Io(p, e);
    let lp = dir.join(crate::writer::LOG);
    if let Some((mut f, file, offset)) = std::fs::read(dir.join(TREE)).ok().and_then(|b| decode(&b)) {
        let usable = f.size() <= size && file <= file_no && (file < file_no || offset <= log_len);
        if usable {
            let mut ok = true;
            let mut from = offset;
            for n in file..file_no {
                let p = dir.join(crate::writer::rotated_name(n));
                let r = File::open(&p).and_then(|rf| {
                    let len = rf.metadata()?.len();
                    scan_lines(&rf, from, len, |line| f.push(merkle::leaf(line))).map(|end| end == len)
                });
                ok &= r.unwrap_or(false);
                from = 0;
            }
            if ok {
                let end = scan_lines(log, from, log_len, |line| f.push(merkle::leaf(line))).map_err(io(lp.clone()))?;
                if end == log_len && f.size() == size {
                    return Ok(f);
                }
            }
        }
        tracing::warn!("{}: the saved Merkle frontier does not fit the log; built again", dir.join(TREE).display());
    }
    // Built again: from the newest file that begins with a rotation record (its frontier), or
    // from the first file.
    let file_path = |n: u64| if n == file_no { lp.clone() } else { dir.join(crate::writer::rotated_name(n)) };
    for start in (1..=file_no).rev() {
        let begin = if start == 1 {
            Some(Frontier::new())
        } else {
            first_line(&file_path(start)).and_then(|l| continuation(&l))
        };
        let Some(mut f) = begin else { continue };
        let mut ok = true;
        for n in start..file_no {
            let p = file_path(n);
            let r = File::open(&p).and_then(|rf| {
                let len = rf.metadata()?.len();
                scan_lines(&rf, 0, len, |line| f.push(merkle::leaf(line))).map(|end| end == len)
            });
            ok &= r.unwrap_or(false);
        }
        let end = scan_lines(log, 0, log_len, |line| f.push(merkle::leaf(line))).map_err(io(lp.clone()))?;
        if ok && end == log_len && f.size() == size {
            return Ok(f);
        }
        break;
    }
    Err(Error::Unsafe(dir.into(), format!("the log does not hold {size} whole records in its {log_len} bytes")))
}

/// The first line of a file (without its `\n`), if it has a whole one in its first 64 KiB.
pub fn first_line(p: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    File::open(p).ok()?.take(64 << 10).read_to_end(&mut buf).ok()?;
    let end = buf.iter().position(|&b| b == b'\n')?;
    buf.truncate(end);
    Some(buf)
}

/// Saves the frontier whose next record is at `offset` in file `file` (a cache: a failure only
/// costs the next checkpoint a rebuild).
pub fn save(dir: &Path, f: &Frontier, file: u64, offset: u64) {
    let p = dir.join(TREE);
    let tmp = dir.join(format!("{TREE}.tmp"));
    let r = std::fs::write(&tmp, encode(f, file, offset)).and_then(|()| std::fs::rename(&tmp, &p));
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
