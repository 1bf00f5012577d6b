#!/usr/bin/env bash
# Builds Tessera's Debian package (target/debian/tessera_<version>-1_<arch>.deb) with cargo-deb,
# configured in module/Cargo.toml ([package.metadata.deb]): builds the release library and tools,
# seals the library (its integrity value written into it), generates the man page and the shell
# completions from tessera-util's own definitions, and packages those files as they are (cargo-deb
# neither rebuilds nor strips them: stripping would change the sealed library).
# Installs cargo-deb (cargo install, from crates.io) when it is missing. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
# TESSERA_PREBUILT=1: package the release build as it is (the test suite's, already built).
if [ "${TESSERA_PREBUILT:-}" != 1 ]; then
    cargo build --release -p tessera-pkcs11
    cargo build --release -p tessera-audit
fi
target/release/tessera-util --seal target/release/libtessera_pkcs11.so
target/release/tessera-util generate-docs target/release/tessera-docs
cargo deb -p tessera-pkcs11 --no-build --no-strip "$@"
