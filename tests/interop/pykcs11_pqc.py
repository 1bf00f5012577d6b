#!/usr/bin/env python3
"""ML-DSA through PyKCS11, for tests/pqc_interop.rs.

Usage: pykcs11_pqc.py MODULE TOKEN_LABEL USER_PIN OUTDIR

For each ML-DSA set: a key pair generated with CKM_ML_DSA_KEY_PAIR_GEN (CKA_PARAMETER_SET in the
public template), a pure signature (CKM_ML_DSA, no parameter: hedged, empty context) verified by
the token, a tampered one refused, and the public key's CKA_PUBLIC_KEY_INFO, the message and the
signature written to OUTDIR/mldsa-<set>.{spki,msg,sig} for the Rust side to verify with an
independent implementation.

When the interpreter's `cryptography` has ML-DSA (cryptography >= 47 with its bundled OpenSSL
>= 3.5), the SubjectPublicKeyInfo is also loaded and the signature verified there, and the other
way round: a key made by `cryptography` from a seed is imported into the token by CKA_SEED (the
token's public key must equal cryptography's) and cryptography's signature verified by the token.
It prints OPENSSL-ML-DSA <version> when it did, NO-OPENSSL-ML-DSA <why> when it could not.

PyKCS11 1.5.20 (PyPI) names the PKCS #11 3.2 constants; older versions (Debian 12's 1.5.12) do
not, so the numbers come from the 3.2 headers here, and CKA_PARAMETER_SET, which those versions
do not know as a number, is passed as a native CK_ULONG.
Prints PASS at the end.
"""
import os
import struct
import sys

import PyKCS11
from PyKCS11 import LowLevel

CKK_ML_DSA = getattr(PyKCS11, "CKK_ML_DSA", 0x4A)
CKM_ML_DSA_KEY_PAIR_GEN = getattr(PyKCS11, "CKM_ML_DSA_KEY_PAIR_GEN", 0x1C)
CKM_ML_DSA = getattr(PyKCS11, "CKM_ML_DSA", 0x1D)
CKA_PARAMETER_SET = getattr(PyKCS11, "CKA_PARAMETER_SET", 0x61D)
CKA_SEED = getattr(PyKCS11, "CKA_SEED", 0x637)
CKA_PUBLIC_KEY_INFO = getattr(PyKCS11, "CKA_PUBLIC_KEY_INFO", 0x129)
SETS = {"44": 1, "65": 2, "87": 3}  # CKP_ML_DSA_44/65/87


def ulong_attr(session, attr, value):
    """(attr, value) as this PyKCS11 version wants a CK_ULONG attribute it may not know."""
    if session.isNum(attr):
        return (attr, value)
    return (attr, struct.pack("@L", value))


def raw(session, obj, attr):
    return bytes(session.getAttributeValue(obj, [attr], allAsBinary=True)[0])


def main():
    module, label, pin, outdir = sys.argv[1:5]
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = next(s for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.strip() == label)
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login(pin)
    has_names = hasattr(PyKCS11, "CKK_ML_DSA")
    print("PyKCS11 names the PKCS #11 3.2 ML-DSA constants: %s" % has_names)

    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.backends.openssl.backend import backend
        openssl = backend.openssl_version_text()
    except Exception as e:  # no ML-DSA in this cryptography
        mldsa = None
        why = "cryptography without ML-DSA (%s)" % e

    msg = b"Tessera signs this with ML-DSA for PyKCS11"
    for name, ps in SETS.items():
        pub_t = [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
                 ulong_attr(session, CKA_PARAMETER_SET, ps)]
        priv_t = [(PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
                  (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE)]
        pub, priv = session.generateKeyPair(pub_t, priv_t, mecha=PyKCS11.Mechanism(CKM_ML_DSA_KEY_PAIR_GEN))
        mech = PyKCS11.Mechanism(CKM_ML_DSA)
        sig = bytes(session.sign(priv, msg, mech))
        assert session.verify(pub, msg, sig, mech), "the token verifies its signature"
        bad = bytearray(sig)
        bad[5] ^= 1
        try:
            ok = session.verify(pub, msg, bytes(bad), mech)
        except PyKCS11.PyKCS11Error as e:
            ok = e.value != PyKCS11.CKR_SIGNATURE_INVALID and "unexpected %s" % e
        assert ok is False, "a tampered signature is refused: %s" % ok
        spki = raw(session, pub, CKA_PUBLIC_KEY_INFO)
        for ext, data in (("spki", spki), ("msg", msg), ("sig", sig)):
            with open(os.path.join(outdir, "mldsa-%s.%s" % (name, ext)), "wb") as f:
                f.write(data)
        print("ML-DSA-%s: key pair, signature of %d bytes, verified by the token" % (name, len(sig)))

        if mldsa is None:
            continue
        key = serialization.load_der_public_key(spki)
        key.verify(sig, msg)  # raises InvalidSignature
        print("ML-DSA-%s: verified by OpenSSL (%s) from the SubjectPublicKeyInfo" % (name, openssl))
        # The other way: cryptography's key imported by its seed; signatures both ways.
        cls = {"44": mldsa.MLDSA44PrivateKey, "65": mldsa.MLDSA65PrivateKey, "87": mldsa.MLDSA87PrivateKey}[name]
        theirs = cls.generate()
        seed = theirs.private_bytes_raw()
        their_spki = theirs.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        imported = session.createObject([
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_KEY_TYPE, CKK_ML_DSA),
            (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
            ulong_attr(session, CKA_PARAMETER_SET, ps), (CKA_SEED, seed)])
        assert raw(session, imported, CKA_PUBLIC_KEY_INFO) == their_spki, "the same public key from the seed"
        their_pub = session.createObject([
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, CKK_ML_DSA),
            (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE), (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
            ulong_attr(session, CKA_PARAMETER_SET, ps),
            (PyKCS11.CKA_VALUE, theirs.public_key().public_bytes_raw())])
        assert session.verify(their_pub, msg, theirs.sign(msg), mech), "the token verifies OpenSSL's signature"
        sig2 = bytes(session.sign(imported, msg, mech))
        theirs.public_key().verify(sig2, msg)
        print("ML-DSA-%s: OpenSSL's key imported by its seed, signatures verified both ways" % name)

    if mldsa is None:
        print("NO-OPENSSL-ML-DSA %s" % why)
    else:
        print("OPENSSL-ML-DSA %s" % openssl)
    session.logout()
    session.closeSession()
    print("PASS")


if __name__ == "__main__":
    main()
