//! Helpers for tests that go through the `cryptoki` crate: the `CK_RV` of an outcome, byte
//! attributes, DER pieces.

use cryptoki::error::{Error, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

/// The `CK_RV` of a call that must have failed with a PKCS#11 error.
pub fn rv_of<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(e, _)) => e,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// `None` for a call that succeeded, else its `CK_RV` (any other error fails the test).
pub fn outcome<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> Option<RvError> {
    match r {
        Ok(_) => None,
        Err(Error::Pkcs11(rv, _)) => Some(rv),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// The `CK_RV` of an error, if it is a PKCS#11 one.
pub fn pkcs11_rv(e: &Error) -> Option<RvError> {
    match e {
        Error::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// A byte-string attribute of an object (a value, a key component, EC parameters or point).
pub fn bytes_attr(s: &Session, o: ObjectHandle, t: AttributeType) -> Vec<u8> {
    match s.get_attributes(o, &[t]).expect("C_GetAttributeValue").pop() {
        Some(
            Attribute::Value(v)
            | Attribute::EcPoint(v)
            | Attribute::EcParams(v)
            | Attribute::Modulus(v)
            | Attribute::PublicExponent(v)
            | Attribute::PrivateExponent(v)
            | Attribute::Prime1(v)
            | Attribute::Prime2(v)
            | Attribute::Exponent1(v)
            | Attribute::Exponent2(v)
            | Attribute::Coefficient(v),
        ) => v,
        other => panic!("unexpected attribute {other:?}"),
    }
}

/// DER OCTET STRING around `v`.
pub fn octet(v: &[u8]) -> Vec<u8> {
    crate::der(0x04, v)
}

/// The `CK_RV` of an error that must be a PKCS#11 one.
pub fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}
