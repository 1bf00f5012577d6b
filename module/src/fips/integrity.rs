//! The module integrity test: a GMAC (NIST SP 800-38D: AES-256-GCM with no plaintext) over the
//! library file, compared with the value recorded inside the library itself when it was sealed
//! (`tessera-util --seal`). The key is fixed and public: the test detects modification, it keeps
//! no secret.
//!
//! # The integrity value
//!
//! ```text
//! GMAC-AES-256(key, IV, the library file with its seal region taken as zeroes)
//! ```
//!
//! that is, the 16-byte tag of AES-256-GCM under the fixed key, with the IV recorded in the seal
//! region, the file's bytes as the additional authenticated data and no plaintext. The IV (96
//! bits) is drawn from aws-lc's approved random generator each time a library is sealed (SP
//! 800-38D §8.2.2), so no IV serves two files; a library already sealed with its right value is
//! left as it is. GMAC's final block carries the data's length, so a byte appended or cut changes
//! the value as any changed byte does. GHASH with the carry-less multiplication instructions runs
//! at about 30 GB/s here, where SHA-256 ran at 2 GB/s: the whole test over the 9 MB library costs
//! about 0.3 ms on one thread, where the HMAC-SHA-256 of the earlier formats cost 4.5 ms of
//! processor time (security-policy.md §5 says what each technique guarantees).
//!
//! # The seal region
//!
//! The library reserves [`REGION_LEN`] bytes for its integrity value: a static
//! (`crypto::library_file::REGION`) in a section of its own, `.tessera_seal`, which the linker
//! places in the file like any read-only data. A fresh build holds [`MAGIC`] there and zeroes
//! (unsealed). Sealing computes the value over the whole file with the region's bytes taken as
//! zeroes, and writes the magic, the sealed flag of this format, the IV and the value into the
//! region, in place (through a sealed copy renamed over the file). The value thus travels with
//! the file: a sealed library verifies wherever it is copied, renamed or linked to, and no other
//! file is read. Every byte outside the region (headers, code, data, the section table that says
//! where the region is) is covered; the region's own bytes are not, and hold nothing but the IV
//! and the value. A library sealed in an earlier format (flags 1 to 3: HMAC-SHA-256 values) is
//! refused with a message that says to seal it again.
//!
//! # The file checked
//!
//! The file checked is the file the running module was loaded from: the kernel's record of the
//! mapping that holds the module's code (`/proc/self/maps`) names it by an absolute path, which
//! stays right after the process changes directory or the file is renamed, and gives its device
//! and inode, which the file opened for the check must have. A path the loader was given (a
//! relative `./libtessera_pkcs11.so`, or a symbolic link) is never trusted for this. The file is
//! read through a read-only mapping of it (`crypto::library_file`), authenticated where the page
//! cache holds it, never copied to the heap.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The fixed integrity key (AES-256), used for nothing else.
/// SSP: integrity key
const KEY: &[u8; 32] = b"Tessera module integrity key, v4";

/// The name of the section that holds the seal region (`crypto::library_file::REGION`).
pub const SECTION: &str = ".tessera_seal";
/// The region's first bytes, in every build: they tell a Tessera seal region from anything else.
pub const MAGIC: [u8; 16] = *b"Tessera seal v1\0";
/// The region's length: the magic, the sealed flag (one byte, then 3 reserved zero bytes), the
/// IV (12 bytes), the integrity value (16 bytes), 16 reserved zero bytes.
pub const REGION_LEN: usize = 64;
const FLAG_AT: usize = 16;
const IV_AT: usize = 20;
/// The GMAC's IV: 96 bits, the length GCM takes without hashing it first.
pub const IV_LEN: usize = 12;
const MAC_AT: usize = 32;
/// The integrity value: a full 128-bit GCM tag.
pub const MAC_LEN: usize = 16;
/// The flag of a library sealed with this format's value (an unsealed one has 0).
const SEALED: u8 = 4;
/// The flags of the earlier formats, which are refused: 1, one HMAC-SHA-256 over the whole file;
/// 2, the file hashed in two halves; 3, the file hashed in 256 KiB pieces.
const SEALED_EARLIER: [u8; 3] = [1, 2, 3];

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
/// GCM under `key` with `iv`, the concatenation of `aad` as additional authenticated data and
/// `text` as plaintext: the ciphertext and the 16-byte tag (with no text, the tag is the GMAC of
/// the data). aws-lc's GCM through `crypto::aes::Gcm`, which takes the data in parts, as the
/// integrity test gives the file (before, in and after the region); aws-lc-rs's AEAD interface
/// takes it in one slice only. One function for the test and for its own known-answer test
/// (`kat::integrity_algorithm`), which thus checks the very code the test runs.
pub fn gcm(key: &[u8], iv: &[u8], aad: &[&[u8]], text: &[u8]) -> Option<(Vec<u8>, [u8; MAC_LEN])> {
    let mut g = crate::crypto::aes::Gcm::new(key, iv, &[], true)?;
    for part in aad {
        g.aad(part)?;
    }
    let out = if text.is_empty() { Vec::new() } else { g.update(text)? };
    Some((out, g.tag(MAC_LEN)?.try_into().ok()?))
}

/// The integrity value of a library file's bytes under `iv`, with the seal region's bytes taken
/// as zeroes. `None` only if aws-lc's GCM fails.
pub fn mac_over(data: &[u8], region: Range<usize>, iv: &[u8; IV_LEN]) -> Option<[u8; MAC_LEN]> {
    let zeroes = [0u8; REGION_LEN];
    let parts = [&data[..region.start], &zeroes[..region.len()], &data[region.end..]];
    Some(gcm(KEY, iv, &parts, &[])?.1)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a sealed library's region records: the IV and the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seal {
    iv: [u8; IV_LEN],
    value: [u8; MAC_LEN],
}

/// What the seal region of a file's bytes records: `Ok(None)` for an unsealed library, the IV
/// and value of a sealed one, or why the region is not one.
fn recorded(data: &[u8], region: Range<usize>) -> Result<Option<Seal>, String> {
    let r = &data[region];
    let reserved_zero = r[FLAG_AT + 1..IV_AT].iter().chain(&r[MAC_AT + MAC_LEN..]).all(|b| *b == 0);
    match r[FLAG_AT] {
        f if SEALED_EARLIER.contains(&f) => Err("the library was sealed in an earlier integrity-value format, which \
                                                 this version no longer accepts; seal it again with: tessera-util \
                                                 --seal LIBRARY"
            .into()),
        _ if !reserved_zero => Err("the seal region's reserved bytes are not zero".into()),
        0 if r[FLAG_AT..].iter().all(|b| *b == 0) => Ok(None),
        SEALED => Ok(Some(Seal {
            iv: r[IV_AT..IV_AT + IV_LEN].try_into().expect("12 bytes"),
            value: r[MAC_AT..MAC_AT + MAC_LEN].try_into().expect("16 bytes"),
        })),
        _ => Err("the seal region is malformed".into()),
    }
}

/// The value computed over `data` under the recorded IV, compared with the recorded value.
fn check_sealed(data: &[u8], region: Range<usize>, seal: Seal) -> Checked {
    let Some(mac) = mac_over(data, region, &seal.iv) else {
        return unreadable("aws-lc's AES-256-GCM failed".into());
    };
    let status = if !super::kat::healthy("integrity") {
        Status::Mismatch
    } else if aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &seal.value).is_ok() {
        Status::Verified
    } else {
        Status::Mismatch
    };
    Checked { status, computed: Some(hex(&mac)), recorded: Some(hex(&seal.value)) }
}

fn unreadable(e: String) -> Checked {
    Checked { status: Status::Unreadable(e), computed: None, recorded: None }
}

/// Finds the region of a file's bytes and the value recorded there; the test's conclusion
/// instead when there is nothing to compute (no region, an unsealed library, a malformed region).
fn region_and_value(data: &[u8]) -> Result<(Range<usize>, Seal), Checked> {
    let region = find_region(data).map_err(unreadable)?;
    match recorded(data, region.clone()) {
        Ok(Some(v)) => Ok((region, v)),
        Ok(None) => Err(Checked { status: Status::Unsealed, computed: None, recorded: None }),
        Err(e) => Err(unreadable(e)),
    }
}

/// The integrity test over a library file's bytes: finds the region, reads the value recorded
/// there and, for a sealed library, compares it with the value computed over the bytes.
pub fn check_bytes(data: &[u8]) -> Checked {
    match region_and_value(data) {
        Ok((region, seal)) => check_sealed(data, region, seal),
        Err(c) => c,
    }
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
    let gcm_failed = || std::io::Error::other("aws-lc's AES-256-GCM failed");
    if let Ok(Some(seal)) = recorded(&data, region.clone()) {
        if mac_over(&data, region.clone(), &seal.iv).ok_or_else(gcm_failed)? == seal.value {
            return Ok(Sealed { path, value: hex(&seal.value), unchanged: true });
        }
    }
    // A fresh IV for every file sealed (SP 800-38D §8.2.2: 96 random bits from an approved
    // generator), so that no IV ever serves two different files under the fixed key.
    let mut iv = [0u8; IV_LEN];
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| std::io::Error::other("aws-lc's random generator failed"))?;
    let mac = mac_over(&data, region.clone(), &iv).ok_or_else(gcm_failed)?;
    let mut sealed_region = [0u8; REGION_LEN];
    sealed_region[..MAGIC.len()].copy_from_slice(&MAGIC);
    sealed_region[FLAG_AT] = SEALED;
    sealed_region[IV_AT..IV_AT + IV_LEN].copy_from_slice(&iv);
    sealed_region[MAC_AT..MAC_AT + MAC_LEN].copy_from_slice(&mac);
    let value = hex(&mac);
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
    match open_checked(library, mapped).and_then(|f| crate::crypto::library_file::Mapped::of(&f)) {
        Ok(map) => check_bytes(&map),
        Err(e) => unreadable(e.to_string()),
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
        for at in [FLAG_AT + 1, IV_AT - 1, MAC_AT + MAC_LEN, REGION_LEN - 1] {
            let mut m = sealed.clone();
            m[region.start + at] = 1;
            assert!(matches!(check_bytes(&m).status, Status::Unreadable(_)), "reserved byte {at}");
        }
        // The IV is the value's too: another IV, another value.
        let mut m = sealed.clone();
        m[region.start + IV_AT] ^= 1;
        assert_eq!(check_bytes(&m).status, Status::Mismatch, "a changed IV");
        // Sealed again (another IV), the copy verifies with another value.
        let q = dir.path().join("other.so");
        std::fs::write(&q, &exe).unwrap();
        let t = seal(&q).unwrap();
        assert_ne!(t.value, s.value, "each sealing draws its own IV");
        assert_eq!(check_bytes(&std::fs::read(&q).unwrap()).status, Status::Verified);
    }

    /// The value is AES-256-GCM's tag under the fixed key and the recorded IV, with the file (its
    /// region zeroed) as additional data and no plaintext, computed here through aws-lc-rs's AEAD
    /// interface from a zeroed copy, independently of `mac_over`'s parts (the recipe of
    /// security-policy.md §2.6 does the same with `dd` and `openssl mac … GMAC`).
    fn reference_value(data: &[u8], region: Range<usize>, iv: &[u8; IV_LEN]) -> [u8; MAC_LEN] {
        use aws_lc_rs::aead;
        let mut z = data.to_vec();
        z[region].fill(0);
        let key = aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::AES_256_GCM, b"Tessera module integrity key, v4").unwrap(),
        );
        let tag = key
            .seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key(*iv), aead::Aad::from(&z[..]), &mut [])
            .unwrap();
        tag.as_ref().try_into().unwrap()
    }

    #[test]
    fn the_value_is_the_documented_construction() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        let iv = [0x5au8; IV_LEN];
        assert_eq!(mac_over(&exe, region.clone(), &iv), Some(reference_value(&exe, region.clone(), &iv)));
        // A region anywhere: at the start, inside and across 16-byte blocks, at the end.
        for len in [1001, 70_000] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i * 7 + 3) as u8).collect();
            for start in [0, 1, 15, 16, 100, len / 2, len - 65, len - 64] {
                let r = start..start + REGION_LEN;
                assert_eq!(mac_over(&data, r.clone(), &iv), Some(reference_value(&data, r, &iv)), "{len}: at {start}");
            }
        }
    }

    /// The seal region's own bytes are not covered: whatever they hold, the value is the same;
    /// any byte outside it changes the value, and so does the length.
    #[test]
    fn only_the_region_is_excluded() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        let iv = [3u8; IV_LEN];
        let base = mac_over(&exe, region.clone(), &iv).unwrap();
        let mut m = exe.clone();
        m[region.clone()].fill(0xa5);
        assert_eq!(mac_over(&m, region.clone(), &iv), Some(base), "the region's bytes are taken as zeroes");
        let half = exe.len() / 2;
        for at in [0, 15, 16, half, half + 1, exe.len() - 1, region.start - 1, region.end] {
            let mut m = exe.clone();
            m[at] ^= 0x80;
            assert_ne!(mac_over(&m, region.clone(), &iv), Some(base), "byte {at}");
        }
        // The length is bound too: a zero byte appended or a byte cut changes the value.
        let mut longer = exe.clone();
        longer.push(0);
        assert_ne!(mac_over(&longer, region.clone(), &iv), Some(base));
        assert_ne!(mac_over(&exe[..exe.len() - 1], region.clone(), &iv), Some(base));
    }

    /// A library sealed in an earlier format (flags 1 to 3) is refused with a message that says to
    /// seal it again; sealing it again writes this format's value, which verifies.
    #[test]
    fn an_earlier_format_seal_is_refused() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        for flag in SEALED_EARLIER {
            let mut old = exe.clone();
            old[region.start + FLAG_AT] = flag;
            // An HMAC-SHA-256 value fills the region's last 32 bytes, as those formats did.
            old[region.start + 32..region.end].fill(0x77);
            match check_bytes(&old).status {
                Status::Unreadable(e) => {
                    assert!(e.contains("earlier integrity-value format") && e.contains("tessera-util --seal"), "{e}")
                }
                other => panic!("flag {flag}: {other:?}"),
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("lib.so");
            std::fs::write(&p, &old).unwrap();
            assert!(!seal(&p).unwrap().unchanged);
            assert_eq!(check_bytes(&std::fs::read(&p).unwrap()).status, Status::Verified);
        }
    }
}
