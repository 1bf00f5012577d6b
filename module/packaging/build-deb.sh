#!/usr/bin/env bash
# Builds Tessera's Debian package, target/debian/tessera_<version>-1_<arch>.deb, with Debian's own
# tools (dpkg-dev: dpkg-architecture, dpkg-shlibdeps, dpkg-deb; tests/setup.sh installs it):
# builds the release library and tools, seals the library (its integrity value written into it),
# generates the man page and the shell completions from tessera-util's own definitions, lays the
# files out in a staging tree and packs it. Nothing is stripped or rebuilt on the way: stripping
# would change the sealed library. The package records the sealed library's SHA-256 and integrity
# value in /usr/share/doc/tessera/integrity.txt. Prints the package's path last.
#
# TESSERA_PREBUILT=1: package the release build as it is (the test suite's, already built).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in dpkg-architecture dpkg-shlibdeps dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install dpkg-dev" >&2; exit 1; }
done
if [ "${TESSERA_PREBUILT:-}" != 1 ]; then
    cargo build --release -p tessera-pkcs11
    cargo build --release -p tessera-audit
fi
release=target/release
# Never a test build: the fault-injection library (tests/build-fault-injection.sh) names the
# variable it reads; the ordinary library does not.
if grep -q TESSERA_FAIL_SELFTEST "$release/libtessera_pkcs11.so"; then
    echo "$release/libtessera_pkcs11.so is a fault-injection test build: rebuild it (cargo build --release -p tessera-pkcs11)" >&2
    exit 1
fi
"$release/tessera-util" --seal "$release/libtessera_pkcs11.so" >&2
"$release/tessera-util" generate-docs "$release/tessera-docs" >&2

version=$(cargo pkgid -p tessera-pkcs11 | sed 's/.*@//')
revision=1
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
out=target/debian
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

# put SOURCE DEST MODE: one file into the staging tree (DEST ending in / keeps SOURCE's name).
put() {
    local dest=$stage/$2
    case $2 in */) dest=$dest$(basename "$1") ;; esac
    install -D -m "$3" "$1" "$dest"
}
put "$release/libtessera_pkcs11.so" "usr/lib/$multiarch/pkcs11/" 644
for tool in tessera-util tessera-audit tessera-sign tessera-migrate; do
    put "$release/$tool" usr/bin/ 755
done
put module/packaging/tessera.module usr/share/p11-kit/modules/ 644
put module/packaging/tessera.conf etc/tessera/ 644
docs=$release/tessera-docs
for page in "$docs"/man/*.1; do
    put "$page" usr/share/man/man1/ 644
done
gzip -9n "$stage"/usr/share/man/man1/*.1
put "$docs/completions/tessera-util.bash" usr/share/bash-completion/completions/tessera-util 644
put "$docs/completions/_tessera-util" usr/share/zsh/vendor-completions/ 644
put "$docs/completions/tessera-util.fish" usr/share/fish/vendor_completions.d/ 644
put README.md usr/share/doc/tessera/ 644
put security-policy.md usr/share/doc/tessera/ 644
for doc in docs/*.md; do
    put "$doc" usr/share/doc/tessera/docs/ 644
done
put module/packaging/copyright usr/share/doc/tessera/ 644

# The sealed library's identity (security-policy.md §2.6): its SHA-256 and the integrity value
# sealed into it, as this build made them.
lib=$release/libtessera_pkcs11.so
sealed=$("$release/tessera-util" --seal "$lib" | sed -n 's/.*integrity value \([0-9a-f]\{32\}\).*/\1/p')
[ -n "$sealed" ] || { echo "could not read the integrity value of $lib" >&2; exit 1; }
cat > "$stage/usr/share/doc/tessera/integrity.txt" <<EOF
Tessera $version ($arch): the library this package installs, sealed.
Check it with: sha256sum /usr/lib/$multiarch/pkcs11/libtessera_pkcs11.so

sha256 $(sha256sum "$lib" | cut -d' ' -f1)  usr/lib/$multiarch/pkcs11/libtessera_pkcs11.so
integrity-value $sealed
EOF
chmod 644 "$stage/usr/share/doc/tessera/integrity.txt"

# Maintainer scripts (debhelper's #DEBHELPER# marker has nothing to stand for here) and conffiles.
for script in postinst postrm; do
    sed '/#DEBHELPER#/d' "module/packaging/debian/$script" > "$stage/DEBIAN/$script"
    chmod 755 "$stage/DEBIAN/$script"
done
echo /etc/tessera/tessera.conf > "$stage/DEBIAN/conffiles"

# Shared-library dependencies of the library and the programs, as dpkg-shlibdeps finds them (it
# reads a source package's debian/control: a minimal one in a scratch directory).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: tessera\n\nPackage: tessera\nArchitecture: any\n' > "$scratch/debian/control"
abs_stage=$(cd "$stage" && pwd)
shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "$abs_stage/usr/lib/$multiarch/pkcs11/libtessera_pkcs11.so" \
    "$abs_stage"/usr/bin/* 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
depends=${shlibs:+$shlibs, }passwd

(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: tessera
Version: $version-$revision
Architecture: $arch
Maintainer: Tessera developers <tessera@localhost>
Installed-Size: $installed_size
Depends: $depends
Section: admin
Priority: optional
Description: PKCS#11 software HSM, a drop-in for SoftHSMv2
 A PKCS#11 3.2 software HSM that loads wherever SoftHSMv2's library loads, with
 power-on self-tests, an approved and a non-approved mode, and per-operation
 approved indicators. The library is installed in the system's PKCS#11
 directory and registered with p11-kit; tessera-util (softhsm2-util's flags)
 and tessera-audit administer its tokens and audit log. Tokens live in
 /var/lib/tessera/tokens, shared by the members of the tessera group.
EOF

deb=$out/tessera_${version}-${revision}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >&2
echo "$PWD/$deb"
