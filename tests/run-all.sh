#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration tests that drive the built .so through
# its C ABI, the cryptoki crate and the external tools, in both modes of the module (the
# approved-mode matrix). Installs what it needs (tests/setup.sh). CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase is announced with the time of day and the seconds since the start, and the run ends
# (passed or not) with the phases' durations: where a slow run's time went, from its log alone.
phase_names=()
phase_starts=()
phase() {
    phase_names+=("$1")
    phase_starts+=("$SECONDS")
    echo "== [$(date -u +%T) +${SECONDS}s] $1: $2"
}
phase_summary() {
    local status=$? i end
    echo "== phases (seconds)"
    for i in "${!phase_names[@]}"; do
        end=${phase_starts[$((i + 1))]:-$SECONDS}
        printf '%6d  %s\n' $((end - phase_starts[i])) "${phase_names[i]}"
    done
    printf '%6d  total (exit status %d)\n' "$SECONDS" "$status"
}
trap phase_summary EXIT

phase setup "system packages (tests/setup.sh)"
. tests/setup.sh
tessera_install_packages

# The fuzz targets (tests/fuzz-smoke.sh: their build, nightly with sanitizer and coverage
# instrumentation, its own aws-lc and dependencies, about 5 minutes of CPU from a clean clone; then
# every target 20 s on its stored corpus) run in the background from the start, at the lowest CPU
# priority: they take only what the builds and tests below leave idle. The builds keep both
# processors busy; the tests, about one (most of them wait on the processes they start, on the
# module's lock, on fsync), so the targets run one at a time while the tests run, and two at a
# time once the tests are done (target/fuzz-tests-done). 20 s a target (30 s until 2026-12-06): every
# stored input is run first either way, and the 12-minute budget of the whole suite on a 2-core
# machine leaves no more (docs/packaging-and-startup.md).
mkdir -p target
rm -f target/fuzz-tests-done
fuzz_job=
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "== fuzz targets' build and smoke run started in the background (output: target/fuzz-smoke.log)"
    FUZZ_SECONDS=${FUZZ_SECONDS:-20} FUZZ_ONE_AT_A_TIME_UNTIL=$PWD/target/fuzz-tests-done \
        nice -n 19 bash tests/fuzz-smoke.sh >target/fuzz-smoke.log 2>&1 &
    fuzz_job=$!
fi

phase fault-build "build the fault-injection library (test builds only: every self-test can be made to fail)"
# Release profile, sharing the release build's dependencies (aws-lc among them); first, because
# it replaces the release library for a moment (the build below puts the ordinary one back).
# Sealed below, with the tools that build makes.
TESSERA_FAULT_MODULE=$(TESSERA_FAULT_SEAL=later bash tests/build-fault-injection.sh)
export TESSERA_FAULT_MODULE

phase build "build (release) the library, the tools and every test; seal both libraries (the integrity value written into the library: needed after every build)"
# One build of everything the suite runs, the test binaries included, so that both runs below
# compile nothing: every cargo command of this script selects the whole workspace with its
# tests, which resolves every dependency's features one way (a narrower selection, such as
# `-p tessera-tests`, resolves some differently and compiles those crates, and everything
# above them, again). The library's own build makes target/release/libtessera_pkcs11.so.
cargo build --release --workspace --lib --bins --tests --examples
target/release/tessera-util --seal
target/release/tessera-util --seal "$TESSERA_FAULT_MODULE"
if grep -q TESSERA_FAIL_SELFTEST target/release/libtessera_pkcs11.so; then
    echo "target/release/libtessera_pkcs11.so is the fault-injection build, not the ordinary one" >&2
    exit 1
fi
export TESSERA_MODULE=$PWD/target/release/libtessera_pkcs11.so
export TESSERA_UTIL=$PWD/target/release/tessera-util

phase python "Python for tests/pqc_interop.rs: PyKCS11 (with the PKCS #11 3.2 names) and cryptography (its wheel's OpenSSL has ML-DSA) from PyPI, in target/pqc-venv"
# Without network access the test falls back to Debian's python3-pykcs11 and checks the
# SubjectPublicKeyInfo with PQClean only.
[ -x target/pqc-venv/bin/python ] || { python3 -m venv target/pqc-venv && target/pqc-venv/bin/pip install -q PyKCS11 cryptography; } ||
    echo "SKIP target/pqc-venv: could not install PyKCS11 and cryptography from PyPI"

# tests/packaging.rs runs here once (it builds the Debian package with dpkg-deb and installs it as
# root): its tests choose each mode themselves, so the approved run below leaves it out.
phase tests-non-approved "tests, non-approved mode (the default)"
TESSERA_MODE=non-approved cargo test --release --workspace --no-fail-fast

phase tests-approved "tests, approved mode (everything but the third-party tool interop, whose tools use non-approved mechanisms)"
# `--workspace` although only tessera-tests' files are named: the same selection as the build
# above, so nothing is compiled again (see there).
TESSERA_MODE=approved cargo test --release --workspace --no-fail-fast \
    --test abi --test attacks --test fips --test docs --test doc_commands --test approved_mode --test pqc_sign --test pqc_stream --test config --test login_cache --test message --test stress --test tools --test process_hardening \
    --test mech_rsa --test wycheproof_rsa --test mech_ec --test wycheproof_ec --test wycheproof_pqc --test pqc_interop \
    --test mech_symmetric --test wycheproof_symmetric --test store_hardening --test crashes --test environments \
    --test audit --test sign --test migrate --test dropin --test pqc_kem --test backup

phase fuzz "fuzz smoke run: every cargo-fuzz target 20 s on its stored corpus (module/fuzz): the rest of it, two targets at a time"
# cargo fuzz needs the nightly toolchain; a machine without it (and without a way to fetch it)
# skips this part with a message rather than failing the suite.
touch target/fuzz-tests-done
if [ -n "$fuzz_job" ]; then
    status=0
    wait "$fuzz_job" || status=$?
    if [ "$status" -ne 0 ]; then
        cat target/fuzz-smoke.log
        echo "the fuzz smoke run failed (above: the build's output and every target's result)" >&2
        exit 1
    fi
    # The build's output stays in the log; the run's report, from its first target on.
    sed -n '/^== [0-9]* targets, /,$p' target/fuzz-smoke.log
else
    echo "SKIP fuzz smoke run: no nightly toolchain on this machine (cargo fuzz needs one)"
fi
