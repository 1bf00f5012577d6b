//! The library's own file, for the integrity test (`fips::integrity`): the seal region reserved in
//! it, and a read-only mapping of the file, through which the test hashes the library where the
//! page cache holds it instead of copying its megabytes to the heap first. Both are `unsafe` in
//! Rust's terms (a static placed in a named section; a mapping), hence here, with `abi/` the only
//! places of the crate where `unsafe` code is allowed.
//!
//! The seal region is a static in a section of its own, `.tessera_seal`: the linker lays it in the
//! file like any read-only data and the section table names where; nothing in the module reads it
//! from memory (the file's bytes are what the test checks). A section of its own holds nothing
//! else, so its placement is all the name says.
//!
//! Mapping a file is `unsafe` in Rust because the bytes behind the slice may change while it is
//! borrowed, if another process writes to the file, or fault (SIGBUS) if the file is truncated.
//! The file mapped is the library this process has loaded and runs: replacing it properly (a
//! package manager, `tessera-util --seal`, `install`, `cp --remove-destination`) writes a new file
//! and renames it, which leaves this file untouched; a process that writes into the loaded file in
//! place, or truncates it, already breaks every process running its code. Bytes changed while the
//! GMAC runs make the test fail (a mismatch), which is what a changed library should do. The
//! mapping is read-only, and lives only while the test runs.

/// A read-only mapping of a whole file.
pub struct Mapped(memmap2::Mmap);

impl Mapped {
    pub fn of(file: &std::fs::File) -> std::io::Result<Mapped> {
        // SAFETY: see the module's comment: a read-only mapping of the loaded library,
        // borrowed only by the integrity GMAC, for which a concurrent change is a failed test.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Mapped(map))
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The reserved region, as the build makes it: the magic, then zeroes (unsealed).
/// `tessera-util --seal` fills it in the file. `#[used]` and the reference in
/// `fips::integrity::check_values` keep it in every link of the library.
#[used]
#[link_section = ".tessera_seal"]
pub static REGION: [u8; crate::fips::integrity::REGION_LEN] = {
    use crate::fips::integrity::{MAGIC, REGION_LEN};
    let mut r = [0u8; REGION_LEN];
    let mut i = 0;
    while i < MAGIC.len() {
        r[i] = MAGIC[i];
        i += 1;
    }
    r
};
