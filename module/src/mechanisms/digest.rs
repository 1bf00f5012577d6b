//! Message digests: SHA-1, SHA-2 and SHA-3 through aws-lc-rs. aws-lc-rs offers no SHA3-224, so
//! that one digest comes from the RustCrypto `sha3` crate.

use super::{DigestOperation, Mechanism, MechanismInfo, Param, Registry};
use crate::crypto::digest::{self, Algorithm, Context};
use crate::crypto::sha3;
use crate::error::{err, Result};
use cryptoki_sys::*;

struct Digest(&'static Algorithm);

struct Running(Context);

impl DigestOperation for Running {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }
    fn output_len(&self) -> usize {
        self.0.algorithm().output_len()
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

impl Mechanism for Digest {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 0, max_key: 0, flags: CKF_DIGEST }
    }

    fn digest(&self, param: &Param) -> Result<Box<dyn DigestOperation>> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        Ok(Box::new(Running(Context::new(self.0))))
    }
}

/// The digest algorithm behind a digest mechanism (also used by hash-then-sign mechanisms).
pub fn algorithm(m: CK_MECHANISM_TYPE) -> Option<&'static Algorithm> {
    Some(match m {
        CKM_SHA_1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        CKM_SHA224 => &digest::SHA224,
        CKM_SHA256 => &digest::SHA256,
        CKM_SHA384 => &digest::SHA384,
        CKM_SHA512 => &digest::SHA512,
        CKM_SHA3_256 => &digest::SHA3_256,
        CKM_SHA3_384 => &digest::SHA3_384,
        CKM_SHA3_512 => &digest::SHA3_512,
        _ => return None,
    })
}

/// SHA3-224, from the `sha3` crate.
struct Sha3_224;

struct Sha3_224Running(sha3::Sha3_224);

impl DigestOperation for Sha3_224Running {
    fn update(&mut self, data: &[u8]) {
        sha3::Digest::update(&mut self.0, data)
    }
    fn output_len(&self) -> usize {
        28
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        sha3::Digest::finalize(self.0).to_vec()
    }
}

impl Mechanism for Sha3_224 {
    fn info(&self) -> MechanismInfo {
        MechanismInfo { min_key: 0, max_key: 0, flags: CKF_DIGEST }
    }

    fn digest(&self, param: &Param) -> Result<Box<dyn DigestOperation>> {
        if !param.is_none() {
            return Err(err(CKR_MECHANISM_PARAM_INVALID));
        }
        Ok(Box::new(Sha3_224Running(<sha3::Sha3_224 as sha3::Digest>::new())))
    }
}

pub fn register(r: &mut Registry) {
    r.add(CKM_SHA3_224, Box::new(Sha3_224));
    for m in [CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_SHA3_256, CKM_SHA3_384, CKM_SHA3_512] {
        if let Some(a) = algorithm(m) {
            r.add(m, Box::new(Digest(a)));
        }
    }
}
