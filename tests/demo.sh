#!/usr/bin/env bash
# End-to-end demo on the default token store (~/.local/share/tessera/tokens, or TESSERA_CONF's):
# builds Tessera, then drives it with tessera-util and OpenSC's pkcs11-tool exactly as one drives
# SoftHSMv2: initialise a token, log in, create and find objects, hash, draw random bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/setup.sh
tessera_install_packages

echo "== building (release)"
cargo build --release -q -p tessera-pkcs11
MOD=$PWD/target/release/libtessera_pkcs11.so
UTIL=$PWD/target/release/tessera-util
# Seal the library: its integrity value, which the power-on self-tests check, written into the
# file itself (needed after every build; the sealed file can then be copied or linked anywhere).
$UTIL --seal
P11="pkcs11-tool --module $MOD"
LABEL=tessera-demo
SO=12345678
PIN=123456

run() { echo "\$ $*" | sed "s|$MOD|libtessera_pkcs11.so|; s|$UTIL|tessera-util|"; "$@"; echo; }

# Start from a clean demo token (other tokens in the store are left alone).
if $UTIL --show-slots | grep -q "Label: *$LABEL\$"; then
    $UTIL --delete-token --token "$LABEL" >/dev/null
fi
run $UTIL --status
run $P11 --show-info
run $UTIL --init-token --free --label "$LABEL" --so-pin $SO --pin $PIN
run $P11 --list-slots
run $P11 --token-label "$LABEL" --login --pin $PIN --list-objects
echo "Tessera demo data" > /tmp/tessera-demo.txt
run $P11 --token-label "$LABEL" --login --pin $PIN --write-object /tmp/tessera-demo.txt --type data --label demo-note
run $P11 --token-label "$LABEL" --login --pin $PIN --list-objects --type data
run $P11 --token-label "$LABEL" --login --pin $PIN --read-object --type data --label demo-note
run $P11 --token-label "$LABEL" --hash -m SHA256 -i /tmp/tessera-demo.txt -o /tmp/tessera-demo.sha256
echo "SHA-256 through Tessera: $(od -An -tx1 /tmp/tessera-demo.sha256 | tr -d ' \n')"
echo "SHA-256 by sha256sum:    $(sha256sum /tmp/tessera-demo.txt | cut -d' ' -f1)"
echo
run $P11 --token-label "$LABEL" --generate-random 16 -o /tmp/tessera-demo.rnd
echo "16 random bytes: $(od -An -tx1 /tmp/tessera-demo.rnd | tr -d ' \n')"
echo
run $P11 --token-label "$LABEL" --login --pin $PIN --keypairgen --key-type EC:prime256v1 --id 01 --label demo-ec
echo "Tessera signs" > /tmp/tessera-demo.msg
run $P11 --token-label "$LABEL" --login --pin $PIN --sign -m ECDSA-SHA256 --id 01 -i /tmp/tessera-demo.msg -o /tmp/tessera-demo.sig
run $P11 --token-label "$LABEL" --login --pin $PIN --verify -m ECDSA-SHA256 --id 01 -i /tmp/tessera-demo.msg --signature-file /tmp/tessera-demo.sig
run $UTIL --show-slots
echo "Demo done. The token '$LABEL' stays in the default store; remove it with:"
echo "  $UTIL --delete-token --token $LABEL"
