#!/usr/bin/env bash
# Builds the fault-injection library (the `fault-injection` feature: test builds only, every
# self-test can be made to fail through TESSERA_FAIL_SELFTEST) into
# target/fault-injection/libtessera_pkcs11.so, sealed, and prints its path.
#
# It is built with the release profile (debug assertions on for the library's crate alone), so it
# shares the release build's dependencies, aws-lc included (a debug build would compile aws-lc a
# second time). Cargo keeps one cdylib per profile,
# so the build replaces target/release/libtessera_pkcs11.so for a moment: run this before the
# release build of the library (tests/run-all.sh does), which puts the ordinary library back. The
# copy is rebuilt only when the sources it is made from have changed (a key over them, from git,
# kept beside it); without git it is rebuilt every time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/fault-injection
lib=$out/libtessera_pkcs11.so
sources=(module audit policy kat-vectors Cargo.toml Cargo.lock .cargo)
key=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    key=$({
        git ls-files -s -- "${sources[@]}"
        git diff HEAD -- "${sources[@]}"
        git ls-files -z -o --exclude-standard -- "${sources[@]}" | xargs -0 -r sha256sum
    } | sha256sum | cut -c1-32)
fi
if [ -n "$key" ] && [ -f "$lib" ] && [ "$(cat "$out/sources.key" 2>/dev/null)" = "$key" ]; then
    echo "$lib is up to date" >&2
else
    # Both variants of the library share these output files (one cdylib per profile), and cargo
    # takes a file it finds there for the variant it builds: without them it builds this one.
    shared=(target/release/libtessera_pkcs11.so target/release/deps/libtessera_pkcs11.so
        target/release/deps/libtessera_pkcs11.rlib)
    rm -f "${shared[@]}"
    # Debug assertions on for the library's own crate only (the feature refuses to build without
    # them); its dependencies stay exactly the release build's. The library's crate itself is not
    # optimised (opt-level 0): 10 s of CPU to compile instead of about 50 s, for every clean build
    # of the suite; the tests that load this library (fips, environments, audit, pqc_kem) take
    # about 2 s longer for it (its known-answer tests run in 11 ms instead of 3 ms, their generic
    # code being compiled into this crate).
    #
    # The features of the dependencies are resolved as for the suite's build (tests/run-all.sh:
    # the whole workspace with its tests), so that build takes every dependency from this one
    # instead of compiling a second variant of each crate whose features differ (nix, pkcs1,
    # sha2, regex-syntax, tessera-audit, ... and all that depends on them). `--workspace --lib
    # --test abi` is what selects that resolution: one integration test of tessera-tests (which
    # does not depend on the library) brings in the dev-dependencies' features; the suite's
    # build then reuses it as it is.
    cargo build --release --workspace --lib --test abi --features tessera-pkcs11/fault-injection \
        --config 'profile.release.package.tessera-pkcs11.debug-assertions=true' \
        --config 'profile.release.package.tessera-pkcs11.opt-level=0' >&2
    mkdir -p "$out"
    cp target/release/libtessera_pkcs11.so "$lib.new"
    # A fault-injection build reads TESSERA_FAIL_SELFTEST; an ordinary one never names it.
    grep -q TESSERA_FAIL_SELFTEST "$lib.new" || { echo "$lib.new is not a fault-injection build" >&2; exit 1; }
    mv "$lib.new" "$lib"
    # Removed again, so that the next release build makes the ordinary library anew.
    rm -f "${shared[@]}"
    [ -z "$key" ] || echo "$key" > "$out/sources.key"
fi
# Sealed with the sealing tool of the same sources (built by the release build, or here).
# TESSERA_FAULT_SEAL=later: the caller seals it after its own build of the tools (tests/run-all.sh
# does; building tessera-util here alone would compile the library once more).
if [ "${TESSERA_FAULT_SEAL:-}" != later ]; then
    [ -x target/release/tessera-util ] || cargo build --release -p tessera-pkcs11 --bin tessera-util >&2
    target/release/tessera-util --seal "$lib" >&2
fi
echo "$PWD/$lib"
