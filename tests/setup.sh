#!/usr/bin/env bash
# Installs the system packages Tessera's build, demo and tests use (Debian 12), when missing.
# Sourced by tests/demo.sh and tests/run-all.sh.
tessera_install_packages() {
    local need=()
    command -v pkcs11-tool >/dev/null || need+=(opensc)
    [ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
    command -v openssl >/dev/null || need+=(openssl)
    command -v cc >/dev/null || need+=(gcc)
    # the security policy's integrity recipe (tests/fips.rs) reads the seal's section with readelf
    command -v readelf >/dev/null || need+=(binutils)
    # interoperability tests (tests/interop.rs)
    compgen -G '/usr/lib/*/engines-3/pkcs11.so' >/dev/null || need+=(libengine-pkcs11-openssl)
    command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
    [ -e /usr/lib/python3/dist-packages/PyKCS11/__init__.py ] || need+=(python3-pykcs11)
    command -v p11-kit >/dev/null || need+=(p11-kit)
    compgen -G '/usr/lib/*/pkcs11/p11-kit-client.so' >/dev/null || need+=(p11-kit-modules)
    command -v p11tool >/dev/null || need+=(gnutls-bin)
    # the Debian package's build and test (tests/packaging.rs): cargo-deb's dependency scan, the
    # man page read back, the CI examples' download step
    command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
    command -v man >/dev/null || need+=(man-db)
    command -v curl >/dev/null || need+=(curl)
    # the documentation's commands (tests/doc_commands.rs): the store upgrade shown with sqlite3
    command -v sqlite3 >/dev/null || need+=(sqlite3)
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    command -v cargo >/dev/null || { echo "cargo is needed: install Rust (https://rustup.rs)"; return 1; }
}
