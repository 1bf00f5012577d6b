#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration tests that drive the built .so through
# its C ABI, the cryptoki crate and the external tools (OpenSC pkcs11-tool, tessera-util).
# Installs what it needs (tests/setup.sh). CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/setup.sh
tessera_install_packages

echo "== build (release)"
cargo build --release -p tessera-pkcs11 -p tessera-tests --bins
export TESSERA_MODULE=$PWD/target/release/libtessera_pkcs11.so
export TESSERA_UTIL=$PWD/target/release/tessera-util

echo "== tests"
cargo test --release --workspace --no-fail-fast
