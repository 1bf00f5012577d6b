//! The module integrity test: an HMAC-SHA-256 value over the library file, compared with the
//! value recorded inside the library itself when it was sealed (`tessera-util --seal`). The HMAC
//! key is fixed and public: the test detects modification, it keeps no secret.
//!
//! # The integrity value
//!
//! The file's bytes, with the seal region taken as zeroes, are cut in pieces of [`PIECE`] bytes
//! (256 KiB; the last one shorter, unless the length is a multiple of it). Each piece is hashed
//! with SHA-256, and the value is
//!
//! ```text
//! HMAC-SHA-256(key, "Tessera module integrity v3\n" || "length <L>\n" || "piece <P>\n" || SHA-256(piece 0) || … || SHA-256(piece n-1))
//! ```
//!
//! with `L` and `P` in decimal and n = ⌈L / P⌉. The pieces can thus be hashed by any number of
//! threads, each taking the next piece no thread has taken, so that a thread that starts late
//! (on a virtual machine, an idle processor may take milliseconds to be given a thread) still
//! takes its share; the value is the same however they are computed. A change to any byte
//! outside the region changes the piece holding it, so its SHA-256 (unless it is a SHA-256
//! collision), so the HMAC's message (whose label, length and piece size are fixed in form and
//! the hashes of fixed size and number, so the message is parsed one way only), so the value
//! (unless HMAC-SHA-256 is forged or collides): the test is as strong as HMAC-SHA-256 and
//! SHA-256's collision resistance (security-policy.md §5).
//!
//! # The seal region
//!
//! The library reserves [`REGION_LEN`] bytes for its integrity value: a static
//! (`crypto::library_file::REGION`) in a section of its own, `.tessera_seal`, which the linker
//! places in the file like any read-only data. A fresh build holds [`MAGIC`] there and zeroes
//! (unsealed). Sealing computes the value over the whole file with the region's bytes taken as
//! zeroes, and writes the magic, the sealed flag of this format and the value into the region, in
//! place (through a sealed copy renamed over the file). The value thus travels with the file: a
//! sealed library verifies wherever it is copied, renamed or linked to, and no other file is
//! read. Every byte outside the region (headers, code, data, the section table that says where
//! the region is) is covered; the region's own bytes are not, and hold nothing but the value. A
//! library sealed in an earlier format (flag 1: one HMAC-SHA-256 over the whole file; flag 2: the
//! file hashed in two halves) is refused with a message that says to seal it again.
//!
//! # The file checked
//!
//! The file checked is the file the running module was loaded from: the kernel's record of the
//! mapping that holds the module's code (`/proc/self/maps`) names it by an absolute path, which
//! stays right after the process changes directory or the file is renamed, and gives its device
//! and inode, which the file opened for the check must have. A path the loader was given (a
//! relative `./libtessera_pkcs11.so`, or a symbolic link) is never trusted for this. The file is
//! read through a read-only mapping of it (`crypto::library_file`), hashed where the page cache
//! holds it, never copied to the heap.

use aws_lc_rs::{digest, hmac};
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
/// integrity value.
pub const REGION_LEN: usize = 64;
const FLAG_AT: usize = 16;
const MAC_AT: usize = 32;
/// The flag of a library sealed with this format's value (an unsealed one has 0).
const SEALED: u8 = 3;
/// The flag of a library sealed in the earlier format (one HMAC-SHA-256 over the whole file),
/// which is refused.
const SEALED_V1: u8 = 1;
/// The flag of a library sealed in the format before this one (the file hashed in two halves),
/// which is refused.
const SEALED_V2: u8 = 2;
/// The label that begins the HMAC's message: it names the format, so that no value of another
/// format or use of the key is the value of this one.
pub const LABEL: &[u8] = b"Tessera module integrity v3\n";

/// The size of the pieces the file is hashed in (the last one may be shorter).
pub const PIECE: usize = 256 << 10;

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

/// How many pieces a file of `len` bytes is hashed in.
pub fn pieces(len: usize) -> usize {
    len.div_ceil(PIECE)
}

/// The byte range of piece `i` of a file of `len` bytes.
pub fn piece(len: usize, i: usize) -> Range<usize> {
    (i * PIECE).min(len)..((i + 1) * PIECE).min(len)
}

/// SHA-256 of `data[range]` with the bytes of `region` taken as zeroes.
pub fn range_digest(data: &[u8], region: Range<usize>, range: Range<usize>) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut at = range.start;
    // The part of the region inside the range (possibly empty).
    let (zs, ze) = (region.start.clamp(range.start, range.end), region.end.clamp(range.start, range.end));
    if zs < ze {
        ctx.update(&data[at..zs]);
        ctx.update(&[0u8; REGION_LEN][..ze - zs]);
        at = ze;
    }
    ctx.update(&data[at..range.end]);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The integrity value of a file of `len` bytes from the SHA-256 of its pieces, in order. `None`
/// unless there is one digest per piece.
pub fn value_of(len: usize, digests: &[[u8; 32]]) -> Option<[u8; 32]> {
    if digests.len() != pieces(len) {
        return None;
    }
    let head = format!("length {len}\npiece {PIECE}\n");
    let mut parts: Vec<&[u8]> = Vec::with_capacity(digests.len() + 2);
    parts.push(LABEL);
    parts.push(head.as_bytes());
    parts.extend(digests.iter().map(|d| &d[..]));
    Some(hmac_sha256(KEY, &parts))
}

/// The integrity value of a library file's bytes with the seal region's bytes taken as zeroes,
/// the pieces hashed one after the other (the self-tests share them between two threads when
/// they may: `fips::IntegrityTest`).
pub fn mac_over(data: &[u8], region: Range<usize>) -> [u8; 32] {
    let digests: Vec<[u8; 32]> =
        (0..pieces(data.len())).map(|i| range_digest(data, region.clone(), piece(data.len(), i))).collect();
    value_of(data.len(), &digests).expect("one digest per piece")
}

/// The HMAC-SHA-256 the integrity test computes (aws-lc's), over the concatenation of `parts`:
/// one function for the test and for its own known-answer test (`kat::integrity_algorithm`),
/// which thus checks the very code the test runs (as it checks [`half_digest`]).
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
        SEALED_V1 | SEALED_V2 => Err("the library was sealed in an earlier integrity-value format, which this \
                                      version no longer accepts; seal it again with: tessera-util --seal LIBRARY"
            .into()),
        _ => Err("the seal region is malformed".into()),
    }
}

/// A library file ready for its integrity test: mapped, its seal region found and the value
/// recorded there read. Its pieces may then be hashed on any threads ([`Prepared::piece`]) and
/// the test concluded from their digests ([`Prepared::conclude`]).
pub struct Prepared {
    map: crate::crypto::library_file::Mapped,
    region: Range<usize>,
    value: [u8; 32],
}

impl Prepared {
    /// How many pieces the file is hashed in.
    pub fn pieces(&self) -> usize {
        pieces(self.map.len())
    }

    /// SHA-256 of piece `i` of the file, the seal region taken as zeroes.
    pub fn piece(&self, i: usize) -> [u8; 32] {
        range_digest(&self.map, self.region.clone(), piece(self.map.len(), i))
    }

    /// The test's conclusion from the digests of the pieces, in order.
    pub fn conclude(&self, digests: &[[u8; 32]]) -> Checked {
        match value_of(self.map.len(), digests) {
            Some(mac) => compare(mac, self.value),
            None => unreadable("the integrity test hashed the wrong number of pieces".into()),
        }
    }
}

fn compare(mac: [u8; 32], value: [u8; 32]) -> Checked {
    let status = if !super::kat::healthy("integrity") {
        Status::Mismatch
    } else if aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &value).is_ok() {
        Status::Verified
    } else {
        Status::Mismatch
    };
    Checked { status, computed: Some(hex(&mac)), recorded: Some(hex(&value)) }
}

fn unreadable(e: String) -> Checked {
    Checked { status: Status::Unreadable(e), computed: None, recorded: None }
}

/// Finds the region of a file's bytes and the value recorded there; the test's conclusion
/// instead when there is nothing to compute (no region, an unsealed library, a malformed region).
fn region_and_value(data: &[u8]) -> Result<(Range<usize>, [u8; 32]), Checked> {
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
        Ok((region, value)) => compare(mac_over(data, region), value),
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
    match prepare_file(library, mapped) {
        Ok(p) => {
            let digests: Vec<[u8; 32]> = (0..p.pieces()).map(|i| p.piece(i)).collect();
            p.conclude(&digests)
        }
        Err(c) => c,
    }
}

fn prepare_file(library: &Path, mapped: Option<((u32, u32), u64)>) -> Result<Prepared, Checked> {
    let map = open_checked(library, mapped)
        .and_then(|f| crate::crypto::library_file::Mapped::of(&f))
        .map_err(|e| unreadable(e.to_string()))?;
    let (region, value) = region_and_value(&map)?;
    Ok(Prepared { map, region, value })
}

/// Readies a library for its integrity test: maps it and reads its seal region. Without a value
/// to compute (the file unreadable, unsealed, or its region malformed), the test's conclusion.
pub fn prepare(library: &Library) -> Result<Prepared, Checked> {
    std::hint::black_box(&crate::crypto::library_file::REGION);
    match library {
        Library::File(p) => prepare_file(p, None),
        Library::Mapped { path, dev, ino } => prepare_file(path, Some((*dev, *ino))),
        Library::Unknown(why) => Err(unreadable(why.clone())),
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
        let split = PIECE;
        for at in [0, region.start - 1, region.end, split - 1, split, sealed.len() - 1] {
            let mut m = sealed.clone();
            m[at] ^= 0x01;
            let st = check_bytes(&m).status;
            assert!(matches!(st, Status::Mismatch | Status::Unreadable(_)), "byte {at}: {st:?}");
        }
        let mut m = sealed.clone();
        m[region.start + FLAG_AT + 1] = 1;
        assert!(matches!(check_bytes(&m).status, Status::Unreadable(_)), "reserved bytes");
    }

    /// The value is the HMAC over the label, the length, the piece size and the SHA-256 of each
    /// 256 KiB piece of the file with the region zeroed, computed here from a zeroed copy,
    /// independently of `range_digest`'s skipping of the region (the recipe of
    /// security-policy.md §2.6 does the same with `dd` and `openssl`).
    fn reference_value(data: &[u8], region: Range<usize>) -> [u8; 32] {
        let mut z = data.to_vec();
        z[region].fill(0);
        let sha = |b: &[u8]| digest::digest(&digest::SHA256, b).as_ref().to_vec();
        let mut msg = format!("Tessera module integrity v3\nlength {}\npiece 262144\n", z.len()).into_bytes();
        for chunk in z.chunks(262144) {
            msg.extend(sha(chunk));
        }
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"Tessera module integrity key, v1"), &msg);
        tag.as_ref().try_into().unwrap()
    }

    #[test]
    fn the_value_is_the_documented_construction() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        assert_eq!(mac_over(&exe, region.clone()), reference_value(&exe, region.clone()));
        // A region anywhere, across a piece boundary too: the zeroes are hashed where they lie.
        // Lengths below, at and above a multiple of the piece size.
        for len in [1001, PIECE, 2 * PIECE, 2 * PIECE + 1001] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i * 7 + 3) as u8).collect();
            let b = if len > PIECE { PIECE } else { len / 2 };
            for start in [0, 100, b - 64, b - 30, b - 1, b, len - 64] {
                let r = start..start + REGION_LEN;
                assert_eq!(mac_over(&data, r.clone()), reference_value(&data, r.clone()), "{len}: region at {start}");
            }
        }
    }

    /// The seal region's own bytes are not covered: whatever they hold, the value is the same;
    /// any byte outside it, in any piece, changes the value.
    #[test]
    fn only_the_region_is_excluded() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        let base = mac_over(&exe, region.clone());
        let mut m = exe.clone();
        m[region.clone()].fill(0xa5);
        assert_eq!(mac_over(&m, region.clone()), base, "the region's bytes are taken as zeroes");
        let n = pieces(exe.len());
        assert!(n > 2, "{n} pieces");
        assert_eq!((piece(exe.len(), 0).start, piece(exe.len(), n - 1).end), (0, exe.len()));
        for i in 1..n {
            assert_eq!(piece(exe.len(), i - 1).end, piece(exe.len(), i).start, "piece {i} follows");
        }
        let split = PIECE;
        for at in [0, split / 2, split - 1, split, split + split / 2, exe.len() - 1, region.start - 1, region.end] {
            let mut m = exe.clone();
            m[at] ^= 0x80;
            assert_ne!(mac_over(&m, region.clone()), base, "byte {at}");
        }
        // The length is bound too: a byte appended or a byte cut changes the value.
        let mut longer = exe.clone();
        longer.push(0);
        assert_ne!(mac_over(&longer, region.clone()), base);
        assert_ne!(mac_over(&exe[..exe.len() - 1], region.clone()), base);
    }

    /// The pieces hashed apart (as two threads do) give the value hashed in one go (as the
    /// sequential path and `tessera-util --seal` do), whichever piece is hashed first.
    #[test]
    fn pieces_hashed_apart_give_the_same_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lib.so");
        std::fs::copy(std::env::current_exe().unwrap(), &p).unwrap();
        let sealed = seal(&p).unwrap();
        let prepared = prepare(&Library::File(p.clone())).expect("a sealed file");
        let n = prepared.pieces();
        // The odd pieces on another thread, the even ones here, the last first.
        let (odd, even): (Vec<[u8; 32]>, Vec<[u8; 32]>) = std::thread::scope(|s| {
            let t = s.spawn(|| (1..n).step_by(2).rev().map(|i| prepared.piece(i)).collect::<Vec<_>>());
            let even = (0..n).step_by(2).rev().map(|i| prepared.piece(i)).collect::<Vec<_>>();
            (t.join().unwrap(), even)
        });
        let mut digests = vec![[0u8; 32]; n];
        for (k, i) in (1..n).step_by(2).rev().enumerate() {
            digests[i] = odd[k];
        }
        for (k, i) in (0..n).step_by(2).rev().enumerate() {
            digests[i] = even[k];
        }
        let c = prepared.conclude(&digests);
        assert_eq!(c.status, Status::Verified);
        assert_eq!(c.computed.as_deref(), Some(sealed.value.as_str()));
        assert_eq!(check_values(&Library::File(p)).computed, c.computed);
        let mut swapped = digests.clone();
        swapped.swap(0, 1);
        assert_ne!(prepared.conclude(&swapped).status, Status::Verified, "the pieces' order counts");
        assert!(matches!(prepared.conclude(&digests[1..]).status, Status::Unreadable(_)), "every piece counts");
    }

    /// A library sealed in an earlier format (flag 1, flag 2) is refused with a message that says
    /// to seal it again; sealing it again writes this format's value, which verifies.
    #[test]
    fn an_earlier_format_seal_is_refused() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let region = find_region(&exe).unwrap();
        for flag in [SEALED_V1, SEALED_V2] {
            let mut old = exe.clone();
            old[region.start + FLAG_AT] = flag;
            let v = hmac_sha256(KEY, &[&exe]);
            old[region.start + MAC_AT..region.end].copy_from_slice(&v);
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
