//! Reading the file to sign or verify: in parts of 1 MiB, with a progress bar on standard error
//! when it is a terminal (nothing otherwise), and the pre-hashes the streamed algorithms apply.

use super::format::PreHash;
use std::io::{IsTerminal, Read};
use std::path::Path;

type Res<T> = Result<T, String>;

/// The size of one part given to `C_SignUpdate` or to a hash.
pub const PART: usize = 1 << 20;

/// Calls `f` on each part of the file at `path`, in order; returns the number of bytes read.
pub fn for_each_part(path: &Path, what: &str, mut f: impl FnMut(&[u8]) -> Res<()>) -> Res<u64> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len, what);
    let mut buf = vec![0u8; PART];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        f(&buf[..n])?;
        total += n as u64;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(total)
}

/// The whole file (for the one-part algorithms).
pub fn read_all(path: &Path) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    // Small files and anything but a terminal get no bar (a script's log stays clean).
    if len < (8 * PART) as u64 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr()).with_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A pre-hash of the file: its bytes, and for SHA-2 the `Digest` value ECDSA verification takes.
pub struct Hashed {
    pub bytes: Vec<u8>,
    pub digest: Option<aws_lc_rs::digest::Digest>,
}

/// Hashes the file with `h` (SHAKE128 to 256 bits, SHAKE256 to 512 bits, as FIPS 205's
/// HashSLH-DSA and the NIST identifiers fix).
pub fn hash_file(path: &Path, h: PreHash, what: &str) -> Res<Hashed> {
    use sha3::digest::{ExtendableOutput, Update, XofReader};
    match h {
        PreHash::Sha256 | PreHash::Sha512 => {
            let alg = if h == PreHash::Sha256 { &aws_lc_rs::digest::SHA256 } else { &aws_lc_rs::digest::SHA512 };
            let mut ctx = aws_lc_rs::digest::Context::new(alg);
            for_each_part(path, what, |p| {
                ctx.update(p);
                Ok(())
            })?;
            let d = ctx.finish();
            Ok(Hashed { bytes: d.as_ref().to_vec(), digest: Some(d) })
        }
        PreHash::Shake128 => {
            let mut x = sha3::Shake128::default();
            for_each_part(path, what, |p| {
                x.update(p);
                Ok(())
            })?;
            let mut out = vec![0u8; 32];
            XofReader::read(&mut x.finalize_xof(), &mut out);
            Ok(Hashed { bytes: out, digest: None })
        }
        PreHash::Shake256 => {
            let mut x = sha3::Shake256::default();
            for_each_part(path, what, |p| {
                x.update(p);
                Ok(())
            })?;
            let mut out = vec![0u8; 64];
            XofReader::read(&mut x.finalize_xof(), &mut out);
            Ok(Hashed { bytes: out, digest: None })
        }
    }
}
