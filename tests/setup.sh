#!/usr/bin/env bash
# Installs the system packages Tessera's build, demo and tests use (Debian 12), when missing.
# Sourced by tests/demo.sh and tests/run-all.sh.
tessera_install_packages() {
    local need=()
    command -v pkcs11-tool >/dev/null || need+=(opensc)
    [ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
    command -v openssl >/dev/null || need+=(openssl)
    command -v cc >/dev/null || need+=(gcc)
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    command -v cargo >/dev/null || { echo "cargo is needed: install Rust (https://rustup.rs)"; return 1; }
}
