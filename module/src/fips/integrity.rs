//! The module integrity test: an HMAC-SHA-256 over the installed library file, compared with the
//! value recorded beside it (`<library>.hmac`) when the module was sealed (`tessera-util --seal`).
//! The HMAC key is fixed and public: the test detects modification, it keeps no secret.
//!
//! The file checked is the file the running module was loaded from: the kernel's record of the
//! mapping that holds the module's code (`/proc/self/maps`) names it by an absolute path, which
//! stays right after the process changes directory or the file is renamed, and gives its device
//! and inode, which the file opened for the check must have. A path the loader was given (a
//! relative `./libtessera_pkcs11.so`, say) is never trusted for this.

use aws_lc_rs::hmac;
use std::fmt;
use std::path::{Path, PathBuf};

/// The fixed integrity key.
/// SSP: integrity key
const KEY: &[u8] = b"Tessera module integrity key, v1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The library matches its recorded value.
    Verified,
    /// No value was recorded beside the library.
    Unsealed,
    /// The library does not match its recorded value.
    Mismatch,
    /// The library or its value could not be read.
    Unreadable(String),
    /// No library file was named: the core was driven directly, without the library being
    /// loaded (as its unit tests drive it). `C_Initialize` always names the loaded file.
    NotApplicable,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Verified => write!(f, "integrity verified"),
            Status::Unsealed => write!(f, "no integrity value recorded (run tessera-util --seal)"),
            Status::Mismatch => write!(f, "the library does not match its integrity value (seal it again with tessera-util --seal after installing a new build)"),
            Status::Unreadable(e) => write!(f, "integrity value unreadable: {e}"),
            Status::NotApplicable => write!(f, "integrity test not applicable"),
        }
    }
}

/// Where a library's integrity value lives.
pub fn seal_path(library: &Path) -> PathBuf {
    let mut p = library.as_os_str().to_owned();
    p.push(".hmac");
    PathBuf::from(p)
}

/// HMAC-SHA-256 of a file, hex.
pub fn mac_file(path: &Path) -> std::io::Result<String> {
    Ok(mac_bytes(&std::fs::read(path)?))
}

fn mac_bytes(data: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, KEY), data);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Records the integrity value of a library.
pub fn seal(library: &Path) -> std::io::Result<PathBuf> {
    let mac = mac_file(library)?;
    let out = seal_path(library);
    std::fs::write(&out, format!("{mac}\n"))?;
    Ok(out)
}

/// The library the integrity test checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Library {
    /// A file named by its path (`tessera-util --status` checks the library beside it).
    File(PathBuf),
    /// The file the running module was mapped from: its absolute path when the mapping was looked
    /// up, and the device (major, minor) and inode the kernel recorded for the mapping.
    Mapped { path: PathBuf, dev: (u32, u32), ino: u64 },
    /// The running module's file could not be found; why.
    Unknown(String),
}

/// The mapping of `/proc/self/maps` that holds address `addr` (an address of the module's code).
pub fn locate(addr: usize) -> Library {
    match std::fs::read_to_string("/proc/self/maps") {
        Ok(maps) => locate_in(&maps, addr),
        Err(e) => Library::Unknown(format!("cannot read /proc/self/maps to find the loaded library: {e}")),
    }
}

/// [`locate`] on the text of a maps file: lines of `start-end perms offset major:minor inode path`.
fn locate_in(maps: &str, addr: usize) -> Library {
    for line in maps.lines() {
        let mut rest = line;
        let mut field = || {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            let (f, r) = rest.split_at(end);
            rest = r;
            f
        };
        let (range, _perms, _offset, dev, ino) = (field(), field(), field(), field(), field());
        let Some((lo, hi)) = range.split_once('-') else { continue };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else { continue };
        if !(lo..hi).contains(&addr) {
            continue;
        }
        let path = rest.trim_start();
        let parsed = dev.split_once(':').and_then(|(ma, mi)| {
            Some(((u32::from_str_radix(ma, 16).ok()?, u32::from_str_radix(mi, 16).ok()?), ino.parse::<u64>().ok()?))
        });
        return match parsed {
            _ if path.ends_with(" (deleted)") => {
                Library::Unknown(format!("the loaded library {path} has been removed or replaced since it was loaded"))
            }
            Some((dev, ino)) if ino != 0 && path.starts_with('/') => {
                Library::Mapped { path: PathBuf::from(path), dev, ino }
            }
            _ => Library::Unknown(format!("the module's code is not mapped from a file ({line})")),
        };
    }
    Library::Unknown("the module's code is in no mapping of /proc/self/maps".into())
}

/// Checks a library against its recorded value.
pub fn check(library: &Library) -> Status {
    check_values(library).status
}

/// What one integrity test found: its conclusion, the value computed over the library file (when
/// it could be read) and the value recorded beside it (when there is one), for the status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub status: Status,
    pub computed: Option<String>,
    pub recorded: Option<String>,
}

/// [`check`], with the values it compared.
pub fn check_values(library: &Library) -> Checked {
    match library {
        Library::File(p) => check_file(p, None),
        Library::Mapped { path, dev, ino } => check_file(path, Some((*dev, *ino))),
        Library::Unknown(why) => Checked { status: Status::Unreadable(why.clone()), computed: None, recorded: None },
    }
}

impl Library {
    /// The library file's path, when it is known.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Library::File(p) | Library::Mapped { path: p, .. } => Some(p),
            Library::Unknown(_) => None,
        }
    }
}

/// Opens the library, and when `mapped` is given makes sure it is the very file that was loaded.
fn open_checked(library: &Path, mapped: Option<((u32, u32), u64)>) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(library)?;
    if let Some((dev, ino)) = mapped {
        let m = f.metadata()?;
        if (libc::major(m.dev()), libc::minor(m.dev()), m.ino()) != (dev.0, dev.1, ino) {
            return Err(std::io::Error::other(format!(
                "{} is no longer the file the module was loaded from (replaced since)",
                library.display()
            )));
        }
    }
    Ok(f)
}

fn check_file(library: &Path, mapped: Option<((u32, u32), u64)>) -> Checked {
    let recorded = match std::fs::read_to_string(seal_path(library)) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Checked { status: Status::Unsealed, computed: None, recorded: None }
        }
        Err(e) => return Checked { status: Status::Unreadable(e.to_string()), computed: None, recorded: None },
    };
    let mac = open_checked(library, mapped).and_then(|mut f| {
        use std::io::Read;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(mac_bytes(&data))
    });
    let (status, computed) = match mac {
        Ok(m) if !super::kat::healthy("integrity") => (Status::Mismatch, Some(m)),
        Ok(m) if aws_lc_rs::constant_time::verify_slices_are_equal(m.as_bytes(), recorded.as_bytes()).is_ok() => {
            (Status::Verified, Some(m))
        }
        Ok(m) => (Status::Mismatch, Some(m)),
        Err(e) => (Status::Unreadable(e.to_string()), None),
    };
    Checked { status, computed, recorded: Some(recorded) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mapping_of_an_address() {
        let maps = "7f0000000000-7f0000001000 r--p 00000000 fd:01 1234 /opt/a b/libtessera_pkcs11.so\n\
                    7f0000001000-7f0000009000 r-xp 00001000 fd:01 1234 /opt/a b/libtessera_pkcs11.so\n\
                    7f000000a000-7f000000b000 rw-p 00000000 00:00 0 \n\
                    7f000000c000-7f000000d000 r-xp 00000000 08:02 99 /gone/libtessera_pkcs11.so (deleted)\n";
        assert_eq!(
            locate_in(maps, 0x7f0000002000),
            Library::Mapped { path: "/opt/a b/libtessera_pkcs11.so".into(), dev: (0xfd, 1), ino: 1234 }
        );
        assert!(matches!(locate_in(maps, 0x7f000000a800), Library::Unknown(_)), "anonymous memory");
        assert!(matches!(locate_in(maps, 0x7f000000c800), Library::Unknown(_)), "a removed file");
        assert!(matches!(locate_in(maps, 0x10), Library::Unknown(_)), "no mapping");
    }
}
