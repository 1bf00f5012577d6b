//! Link the PKCS#11 library with `-z nodelete`: applications and p11-kit `dlclose` modules, and a
//! Rust library cannot be unmapped safely while threads of the host still hold thread-local state
//! whose destructors live in it. With `nodelete`, `dlclose` leaves the code mapped; a later
//! `dlopen` finds the same copy.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=build.rs");
}
