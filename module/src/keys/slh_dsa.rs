//! SLH-DSA keys (`CKK_SLH_DSA`, FIPS 205), as PKCS #11 3.2 encodes them: `CKA_PARAMETER_SET`
//! (`CKP_SLH_DSA_*`, twelve sets), public `CKA_VALUE` `PK.seed ‖ PK.root`, private `CKA_VALUE`
//! `SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root` (no `CKA_SEED`: the private key is its own seed). A
//! private key whose public half is not the one its seeds give is refused. SubjectPublicKeyInfo
//! and PKCS #8 (the raw private key as the `privateKey` octets) use the NIST OIDs (RFC 9909).

use super::{KeyPair, KeyParts, KeyType, Pkcs8, BASE};
use crate::crypto::slhdsa::SlhDsa;
use crate::error::{err, Result};
use crate::object::attrs::{s, Kind::*, Spec, FIXED, REQ_CREATE, SECRET};
use crate::object::{ulong, Object};
use cryptoki_sys::*;
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

pub const PUBLIC: &[Spec] = &[s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED), s(CKA_VALUE, Bytes, REQ_CREATE | FIXED)];

pub const PRIVATE: &[Spec] =
    &[s(CKA_PARAMETER_SET, Ulong, REQ_CREATE | FIXED), s(CKA_VALUE, Bytes, REQ_CREATE | FIXED | SECRET)];

pub const SLH_DSA: KeyType = KeyType {
    name: "SLH-DSA",
    public: Some(PUBLIC),
    private: Some(PRIVATE),
    computed,
    public_key_info,
    public_key_info_matches,
    key_info: |_| Default::default(),
    // Tessera's SLH-DSA is not served by aws-lc's module (policy/non-approved.toml).
    approved: |_, _| false,
    pkcs8: Some(Pkcs8 { reads_oid: |o| SlhDsa::of_oid(o).is_some(), read, encode }),
    pairwise: |public, private, healthy| super::signs_and_verifies(CKM_SLH_DSA, public, private, healthy),
    ..BASE
};

/// The parameter set of a key object (`CKR_PARAMETER_SET_NOT_SUPPORTED` for a value naming none).
pub fn set_of(obj: &Object) -> Result<SlhDsa> {
    let v = obj.ulong(CKA_PARAMETER_SET).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
    SlhDsa::of(v).ok_or(err(CKR_PARAMETER_SET_NOT_SUPPORTED))
}

fn computed(obj: &mut Object, _: CK_KEY_TYPE) -> Result<()> {
    let set = set_of(obj)?;
    let v = obj.get(CKA_VALUE).unwrap_or_default();
    let ok = match obj.class() {
        CKO_PUBLIC_KEY => v.len() == set.public_len(),
        CKO_PRIVATE_KEY => set.private_key_consistent(v),
        _ => true,
    };
    if !ok {
        return Err(err(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    Ok(())
}

/// The public key of a public or private key object (a private key ends with it).
pub fn public_key(obj: &Object, private: bool) -> Result<Vec<u8>> {
    let set = set_of(obj)?;
    let v = obj.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?;
    let want = if private { set.private_len() } else { set.public_len() };
    if v.len() != want {
        return Err(err(CKR_KEY_TYPE_INCONSISTENT));
    }
    Ok(v[v.len() - set.public_len()..].to_vec())
}

fn public_key_info(obj: &Object, private: bool) -> Result<Option<KeyParts>> {
    Ok(Some((set_of(obj)?.oid(), None, public_key(obj, private)?)))
}

fn public_key_info_matches(obj: &Object, spki: &SubjectPublicKeyInfoRef<'_>, key: &[u8]) -> Result<bool> {
    super::raw_key_info_matches(public_key_info(obj, obj.class() == CKO_PRIVATE_KEY), spki, key)
}

/// RFC 9909: the `privateKey` octets are the raw private key.
fn read(alg: &AlgorithmIdentifierRef<'_>, sk: &[u8]) -> std::result::Result<KeyPair, String> {
    let set = SlhDsa::of_oid(alg.oid).ok_or("not an SLH-DSA algorithm")?;
    if alg.parameters.is_some() {
        return Err("SLH-DSA algorithm identifiers have no parameters".into());
    }
    if !set.private_key_consistent(sk) {
        return Err(format!("not an {} private key", set.name()));
    }
    let pk = sk[sk.len() - set.public_len()..].to_vec();
    let private = vec![(CKA_PARAMETER_SET, ulong(set.set())), (CKA_VALUE, sk.to_vec().into())];
    let public = vec![(CKA_PARAMETER_SET, ulong(set.set())), (CKA_VALUE, pk.into())];
    Ok(KeyPair { key_type: CKK_SLH_DSA, private, public })
}

fn encode(obj: &Object) -> std::result::Result<KeyParts, String> {
    let set = set_of(obj).map_err(|e| e.to_string())?;
    let sk = obj.get(CKA_VALUE).ok_or("SLH-DSA private key without CKA_VALUE")?;
    Ok((set.oid(), None, sk.to_vec()))
}
