//! The module integrity test: an HMAC-SHA-256 over the library file, compared with the value
//! recorded inside the library itself when it was sealed (`tessera-util --seal`). The HMAC key is
//! fixed and public: the test detects modification, it keeps no secret.
//!
//! # The seal region
//!
//! The library reserves [`REGION_LEN`] bytes for its integrity value: a static
//! (`crypto::library_file::REGION`) in a section of its own, `.tessera_seal`, which the linker
//! places in the file like any read-only data. A fresh build holds [`MAGIC`] there and zeroes (unsealed). Sealing computes the HMAC over
//! the whole file with the region's bytes taken as zeroes, and writes the magic, a sealed flag and
//! the HMAC into the region, in place (through a sealed copy renamed over the file). The value
//! thus travels with the file: a sealed library verifies wherever it is copied, renamed or linked
//! to, and no other file is read. Every byte outside the region (headers, code, data, the section
//! table that says where the region is) is covered; the region's own bytes are not, and hold
//! nothing but the value.
//!
//! # The file checked
//!
//! The file checked is the file the running module was loaded from: the kernel's record of the
//! mapping that holds the module's code (`/proc/self/maps`) names it by an absolute path, which
//! stays right after the process changes directory or the file is renamed, and gives its device
//! and inode, which the file opened for the check must have. A path the loader was given (a
//! relative `./libtessera_pkcs11.so`, or a symbolic link) is never trusted for this. The file is
//! read through a read-only mapping of it (`crypto::library_file`), hashed where the page cache holds
//! it, never copied to the heap.

use aws_lc_rs::hmac;
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The fixed integrity key.
/// SSP: integrity key
const KEY: &[u8] = b"Tessera module integrity key, v1";

/// The name of the section that holds the seal region (`crypto::library_file::REGION`).
pub const SECTION: &str = ".tessera_seal";
/// The region's first bytes, in every build: they tell a Tessera seal region from anything else.
pub const MAGIC: [u8; 16] = *b"Tessera seal v1\0";
/// The region's length: the magic, the sealed flag (one byte, then 15 reserved zero bytes), the
/// HMAC-SHA-256.
pub const REGION_LEN: usize = 64;
const FLAG_AT: usize = 16;
const MAC_AT: usize = 32;
/// The flag of a sealed library (an unsealed one has 0).
const SEALED: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The library matches its recorded value.
    Verified,
    /// The library holds no value: it was never sealed.
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
            Status::Unsealed => write!(f, "the library is not sealed: it holds no integrity value"),
            Status::Mismatch => {
                write!(f, "the library does not match the integrity value sealed into it (modified since)")
            }
            Status::Unreadable(e) => write!(f, "integrity value unreadable: {e}"),
            Status::NotApplicable => write!(f, "integrity test not applicable"),
        }
    }
}

/// Where the seal region lies in a library file's bytes; checks it is one (its length, its magic).
pub fn find_region(data: &[u8]) -> Result<Range<usize>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).map_err(|e| format!("not a shared library Tessera can read ({e})"))?;
    let section = file
        .section_by_name(SECTION)
        .ok_or_else(|| format!("no seal region (no {SECTION} section): not a Tessera library"))?;
    let (offset, len) =
        section.file_range().ok_or_else(|| format!("the {SECTION} section has no bytes in the file"))?;
    let start = usize::try_from(offset).map_err(|_| "seal region out of range".to_string())?;
    let end = start.checked_add(REGION_LEN).ok_or("seal region out of range")?;
    // The region is the section's first bytes. A build may lay more after it in the section (an
    // address-sanitizer build pads every static with a red zone): those are covered like the rest
    // of the file.
    if len < REGION_LEN as u64 || end > data.len() {
        return Err(format!("the {SECTION} section is {len} bytes, shorter than the {REGION_LEN} of a seal region"));
    }
    if data[start..start + MAGIC.len()] != MAGIC {
        return Err(format!("the {SECTION} section does not begin with the seal region's marker"));
    }
    Ok(start..end)
}

/// HMAC-SHA-256 of a library file's bytes with the seal region's bytes taken as zeroes.
pub fn mac_over(data: &[u8], region: Range<usize>) -> [u8; 32] {
    hmac_sha256(KEY, &[&data[..region.start], &[0u8; REGION_LEN], &data[region.end..]])
}

/// The HMAC-SHA-256 the integrity test computes (aws-lc's), over the concatenation of `parts`:
/// one function for the test and for its own known-answer test (`kat::integrity_algorithm`),
/// which thus checks the very code the test runs.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for p in parts {
        ctx.update(p);
    }
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the seal region of a file's bytes records: `Ok(None)` for an unsealed library, the value
/// of a sealed one, or why the region is not one.
fn recorded(data: &[u8], region: Range<usize>) -> Result<Option<[u8; 32]>, String> {
    let r = &data[region];
    if r[FLAG_AT + 1..MAC_AT].iter().any(|b| *b != 0) {
        return Err("the seal region's reserved bytes are not zero".into());
    }
    match r[FLAG_AT] {
        0 if r[MAC_AT..].iter().all(|b| *b == 0) => Ok(None),
        SEALED => Ok(Some(r[MAC_AT..].try_into().expect("32 bytes"))),
        _ => Err("the seal region is malformed".into()),
    }
}

/// The integrity test over a library file's bytes: finds the region, reads the value recorded
/// there and, for a sealed library, compares it with the HMAC of the bytes.
pub fn check_bytes(data: &[u8]) -> Checked {
    let unreadable = |e: String| Checked { status: Status::Unreadable(e), computed: None, recorded: None };
    let region = match find_region(data) {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    let value = match recorded(data, region.clone()) {
        Ok(Some(v)) => v,
        Ok(None) => return Checked { status: Status::Unsealed, computed: None, recorded: None },
        Err(e) => return unreadable(e),
    };
    let mac = mac_over(data, region);
    let status = if !super::kat::healthy("integrity") {
        Status::Mismatch
    } else if aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &value).is_ok() {
        Status::Verified
    } else {
        Status::Mismatch
    };
    Checked { status, computed: Some(hex(&mac)), recorded: Some(hex(&value)) }
}

/// What sealing a library did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The library file sealed (a symbolic link given is followed: its target is sealed).
    pub path: PathBuf,
    /// The integrity value, hex.
    pub value: String,
    /// The file already held this value (nothing was written).
    pub unchanged: bool,
}

/// Seals a library in place: writes its integrity value into its seal region. The file is
/// replaced atomically: a sealed copy is written beside it (same permissions), flushed to disk and
/// renamed over it, so that a process loading the library meanwhile sees the old file or the new
/// one whole, and a process that has it loaded keeps the file it loaded. A library already sealed
/// with its right value is left as it is (a read-only installed library needs no write).
pub fn seal(library: &Path) -> std::io::Result<Sealed> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::fs::canonicalize(library)?;
    // The tool's copy of the file (a heap buffer is fine here: the tool writes it back).
    let mut data = std::fs::read(&path)?;
    let region = find_region(&data).map_err(std::io::Error::other)?;
    let mac = mac_over(&data, region.clone());
    let mut sealed_region = [0u8; REGION_LEN];
    sealed_region[..MAGIC.len()].copy_from_slice(&MAGIC);
    sealed_region[FLAG_AT] = SEALED;
    sealed_region[MAC_AT..].copy_from_slice(&mac);
    let value = hex(&mac);
    if data[region.clone()] == sealed_region {
        return Ok(Sealed { path, value, unchanged: true });
    }
    data[region].copy_from_slice(&sealed_region);
    let dir = path.parent().ok_or_else(|| std::io::Error::other("the library has no directory"))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // A name no other sealing picks (another process, or another thread of this one).
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.sealing-{}-{n}", std::process::id()));
    let meta = std::fs::metadata(&path)?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode & 0o7777).open(&tmp)?;
        f.write_all(&data)?;
        // The library's owner and group too, where this process may give them (root sealing an
        // installed library); otherwise the copy is the sealing user's, as any file it writes.
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
        // The mode asked for at creation is cut by the umask; the copy gets the library's own.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(Sealed { path, value, unchanged: false })
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
/// it was computed: a sealed library) and the value recorded in it (when there is one), for the
/// status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub status: Status,
    pub computed: Option<String>,
    pub recorded: Option<String>,
}

/// [`check`], with the values it compared.
pub fn check_values(library: &Library) -> Checked {
    // The region in memory is never read (the file's copy is what counts); referring to it keeps
    // it in every link of the library.
    std::hint::black_box(&crate::crypto::library_file::REGION);
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
    let map = open_checked(library, mapped).and_then(|f| crate::crypto::library_file::Mapped::of(&f));
    match map {
        Ok(m) => check_bytes(&m),
        Err(e) => Checked { status: Status::Unreadable(e.to_string()), computed: None, recorded: None },
    }
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

    /// The test binary links the core, and with it the seal region: its own file is a library
    /// with an unsealed region, which sealing fills, and which any changed byte outside the region
    /// then fails.
    #[test]
    fn seals_and_checks_a_file_with_the_region() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).expect("the test binary holds the seal region");
        assert_eq!(check_bytes(&exe).status, Status::Unsealed);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lib.so");
        std::fs::write(&p, &exe).unwrap();
        let s = seal(&p).unwrap();
        assert!(!s.unchanged);
        assert!(seal(&p).unwrap().unchanged, "sealing twice writes nothing");
        let sealed = std::fs::read(&p).unwrap();
        let c = check_bytes(&sealed);
        assert_eq!(c.status, Status::Verified);
        assert_eq!(c.computed.as_deref(), Some(s.value.as_str()));
        assert_eq!(sealed[..region.start], exe[..region.start]);
        assert_eq!(sealed[region.end..], exe[region.end..]);
        for at in [0, region.start - 1, region.end, sealed.len() / 2, sealed.len() - 1] {
            let mut m = sealed.clone();
            m[at] ^= 0x01;
            let st = check_bytes(&m).status;
            assert!(matches!(st, Status::Mismatch | Status::Unreadable(_)), "byte {at}: {st:?}");
        }
        let mut m = sealed.clone();
        m[region.start + FLAG_AT + 1] = 1;
        assert!(matches!(check_bytes(&m).status, Status::Unreadable(_)), "reserved bytes");
    }
}
