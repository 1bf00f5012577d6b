"""Drives the module through PyKCS11.

    python3 pykcs11_check.py <module .so> <token label> <user PIN> [--reference]

Generates (session) key pairs through the module: RSA-2048, for RSA-OAEP (SHA-256, MGF1-SHA-256;
without and with a label) encryption and decryption, and EC P-256, for ECDSA over a SHA-256 digest
(CKM_ECDSA) and with CKM_ECDSA_SHA256; each signature is verified by the module and an altered one
rejected. Prints one line per check, "PASS" at the end; exits 1 with the PKCS#11 error on failure.

--reference: the module is SoftHSMv2 2.6, which has RSA-OAEP with SHA-1 only, without a label,
and no CKM_ECDSA_SHA256; OAEP then uses SHA-1, the label checks are left out, and ECDSA-SHA256
runs only if the mechanism list has it.
"""

import hashlib
import sys

import PyKCS11
from PyKCS11.LowLevel import CKA_EC_PARAMS, CKA_EC_POINT

P256_OID = bytes.fromhex("06082a8648ce3d030107")
MESSAGE = b"Tessera through PyKCS11"


def check(ok, what):
    if not ok:
        print("FAIL " + what)
        sys.exit(1)
    print("OK " + what)


def rsa_oaep(session, reference):
    pub_t = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_ENCRYPT, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_MODULUS_BITS, 2048),
        (PyKCS11.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01)),
        (PyKCS11.CKA_LABEL, "py-rsa"),
    ]
    priv_t = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_PRIVATE, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_DECRYPT, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_LABEL, "py-rsa"),
    ]
    pub, priv = session.generateKeyPair(pub_t, priv_t, PyKCS11.MechanismRSAGENERATEKEYPAIR)
    check(True, "RSA-2048 key pair generated")
    if reference:
        name, hash_mech, mgf = "RSA-OAEP-SHA1", PyKCS11.CKM_SHA_1, PyKCS11.CKG_MGF1_SHA1
    else:
        name, hash_mech, mgf = "RSA-OAEP-SHA256", PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256
    oaep = PyKCS11.RSAOAEPMechanism(hash_mech, mgf)
    ciphertext = bytes(session.encrypt(pub, MESSAGE, oaep))
    check(len(ciphertext) == 256, "%s encryption: %d bytes" % (name, len(ciphertext)))
    check(bytes(session.decrypt(priv, ciphertext, oaep)) == MESSAGE, "%s decryption gives the message back" % name)
    if not reference:
        labelled = PyKCS11.RSAOAEPMechanism(hash_mech, mgf, b"label")
        ciphertext = bytes(session.encrypt(pub, MESSAGE, labelled))
        check(bytes(session.decrypt(priv, ciphertext, labelled)) == MESSAGE, "%s with a label" % name)
        try:
            session.decrypt(priv, ciphertext, oaep)
            check(False, "%s decryption with the wrong label is rejected" % name)
        except PyKCS11.PyKCS11Error as e:
            check(True, "%s decryption with the wrong label is rejected (%s)" % (name, e))
    session.destroyObject(priv)
    session.destroyObject(pub)


def ecdsa(session, mechanisms, reference):
    pub_t = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
        (CKA_EC_PARAMS, P256_OID),
        (PyKCS11.CKA_LABEL, "py-ec"),
    ]
    priv_t = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_FALSE),
        (PyKCS11.CKA_PRIVATE, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_LABEL, "py-ec"),
    ]
    pub, priv = session.generateKeyPair(pub_t, priv_t, PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None))
    point = bytes(session.getAttributeValue(pub, [CKA_EC_POINT])[0])
    check(point[:3] == b"\x04\x41\x04", "EC P-256 key pair generated, CKA_EC_POINT %s..." % point[:4].hex())
    raw = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
    digest = hashlib.sha256(MESSAGE).digest()
    sig = bytes(session.sign(priv, digest, raw))
    check(len(sig) == 64, "ECDSA signature over a SHA-256 digest: %d bytes" % len(sig))
    check(session.verify(pub, digest, sig, raw), "ECDSA signature verified")
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    check(not session.verify(pub, digest, bad, raw), "altered ECDSA signature rejected")
    if not reference or PyKCS11.CKM[PyKCS11.CKM_ECDSA_SHA256] in mechanisms:
        hashed = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA256, None)
        sig = bytes(session.sign(priv, MESSAGE, hashed))
        check(session.verify(pub, MESSAGE, sig, hashed), "ECDSA-SHA256 signature verified")
        check(session.verify(pub, digest, sig, raw), "ECDSA-SHA256 signature verifies as ECDSA over the digest")
        check(not session.verify(pub, MESSAGE + b"!", sig, hashed), "ECDSA-SHA256 over other data rejected")
    else:
        print("note: CKM_ECDSA_SHA256 is not in the mechanism list")
    session.destroyObject(priv)
    session.destroyObject(pub)


def main():
    module, label, pin = sys.argv[1:4]
    reference = "--reference" in sys.argv[4:]
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slot = None
    for s in lib.getSlotList(tokenPresent=True):
        if lib.getTokenInfo(s).label.strip() == label:
            slot = s
    check(slot is not None, "token %r found" % label)
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login(pin)
    mechanisms = mechanism_names(lib, slot)
    print("mechanisms: %s" % ", ".join(mechanisms))
    rsa_oaep(session, reference)
    ecdsa(session, mechanisms, reference)
    session.logout()
    session.closeSession()
    print("PASS")


def mechanism_names(lib, slot):
    """lib.getMechanismList(slot), but for mechanisms this PyKCS11 has no name for (PKCS #11 3.2's
    ML-KEM, ML-DSA …: Debian 12's 1.5.12 raises KeyError on them), which get "CKM_0x…"."""
    raw = PyKCS11.LowLevel.ckintlist()
    rv = lib.lib.C_GetMechanismList(slot, raw)
    if rv != PyKCS11.CKR_OK:
        raise PyKCS11.PyKCS11Error(rv)
    return [PyKCS11.CKM.get(raw[i], "CKM_0x%X" % raw[i]) for i in range(len(raw))]


if __name__ == "__main__":
    try:
        main()
    except PyKCS11.PyKCS11Error as e:
        print("FAIL PyKCS11Error: %s" % e)
        sys.exit(1)
