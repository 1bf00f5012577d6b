//! SLH-DSA (FIPS 205), all twelve parameter sets, from RustCrypto's `slh-dsa` (aws-lc-rs has no
//! SLH-DSA): the internal functions (`slh_keygen_internal`, `slh_sign_internal`,
//! `slh_verify_internal`, FIPS 205 Algorithms 18, 19 and 20) over a message representative `M'`
//! that the mechanism builds (pure or pre-hash, with its context). Outside aws-lc's module: the
//! policy does not approve it.

use cryptoki_sys::*;
use pkcs8::ObjectIdentifier;
use slh_dsa::{
    Sha2_128f, Sha2_128s, Sha2_192f, Sha2_192s, Sha2_256f, Sha2_256s, Shake128f, Shake128s, Shake192f, Shake192s,
    Shake256f, Shake256s, Signature, SigningKey, VerifyingKey,
};
use zeroize::Zeroizing;

/// The twelve parameter sets, named as `CKP_SLH_DSA_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlhDsa {
    Sha2_128s,
    Shake128s,
    Sha2_128f,
    Shake128f,
    Sha2_192s,
    Shake192s,
    Sha2_192f,
    Shake192f,
    Sha2_256s,
    Shake256s,
    Sha2_256f,
    Shake256f,
}

/// Runs `$body` with `$p` the RustCrypto parameter type of `$set`.
macro_rules! with_params {
    ($set:expr, $p:ident => $body:expr) => {
        match $set {
            SlhDsa::Sha2_128s => {
                type $p = Sha2_128s;
                $body
            }
            SlhDsa::Shake128s => {
                type $p = Shake128s;
                $body
            }
            SlhDsa::Sha2_128f => {
                type $p = Sha2_128f;
                $body
            }
            SlhDsa::Shake128f => {
                type $p = Shake128f;
                $body
            }
            SlhDsa::Sha2_192s => {
                type $p = Sha2_192s;
                $body
            }
            SlhDsa::Shake192s => {
                type $p = Shake192s;
                $body
            }
            SlhDsa::Sha2_192f => {
                type $p = Sha2_192f;
                $body
            }
            SlhDsa::Shake192f => {
                type $p = Shake192f;
                $body
            }
            SlhDsa::Sha2_256s => {
                type $p = Sha2_256s;
                $body
            }
            SlhDsa::Shake256s => {
                type $p = Shake256s;
                $body
            }
            SlhDsa::Sha2_256f => {
                type $p = Sha2_256f;
                $body
            }
            SlhDsa::Shake256f => {
                type $p = Shake256f;
                $body
            }
        }
    };
}

impl SlhDsa {
    /// In `CKP_SLH_DSA_*` order (1 to 12).
    pub const ALL: [SlhDsa; 12] = [
        SlhDsa::Sha2_128s,
        SlhDsa::Shake128s,
        SlhDsa::Sha2_128f,
        SlhDsa::Shake128f,
        SlhDsa::Sha2_192s,
        SlhDsa::Shake192s,
        SlhDsa::Sha2_192f,
        SlhDsa::Shake192f,
        SlhDsa::Sha2_256s,
        SlhDsa::Shake256s,
        SlhDsa::Sha2_256f,
        SlhDsa::Shake256f,
    ];

    /// The set a `CKA_PARAMETER_SET` value names (`CKP_SLH_DSA_SHA2_128S` = 1 … `SHAKE_256F` = 12).
    pub fn of(set: CK_ULONG) -> Option<SlhDsa> {
        (1..=12).contains(&set).then(|| SlhDsa::ALL[set as usize - 1])
    }

    /// Its `CKA_PARAMETER_SET` value.
    pub fn set(self) -> CK_ULONG {
        SlhDsa::ALL.iter().position(|s| *s == self).map(|i| i as CK_ULONG + 1).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            SlhDsa::Sha2_128s => "SLH-DSA-SHA2-128s",
            SlhDsa::Shake128s => "SLH-DSA-SHAKE-128s",
            SlhDsa::Sha2_128f => "SLH-DSA-SHA2-128f",
            SlhDsa::Shake128f => "SLH-DSA-SHAKE-128f",
            SlhDsa::Sha2_192s => "SLH-DSA-SHA2-192s",
            SlhDsa::Shake192s => "SLH-DSA-SHAKE-192s",
            SlhDsa::Sha2_192f => "SLH-DSA-SHA2-192f",
            SlhDsa::Shake192f => "SLH-DSA-SHAKE-192f",
            SlhDsa::Sha2_256s => "SLH-DSA-SHA2-256s",
            SlhDsa::Shake256s => "SLH-DSA-SHAKE-256s",
            SlhDsa::Sha2_256f => "SLH-DSA-SHA2-256f",
            SlhDsa::Shake256f => "SLH-DSA-SHAKE-256f",
        }
    }

    /// id-slh-dsa-* (NIST CSOR, RFC 9909): 2.16.840.1.101.3.4.3.20 to .31, the SHA2 sets first.
    pub fn oid(self) -> ObjectIdentifier {
        let arc = match self {
            SlhDsa::Sha2_128s => "20",
            SlhDsa::Sha2_128f => "21",
            SlhDsa::Sha2_192s => "22",
            SlhDsa::Sha2_192f => "23",
            SlhDsa::Sha2_256s => "24",
            SlhDsa::Sha2_256f => "25",
            SlhDsa::Shake128s => "26",
            SlhDsa::Shake128f => "27",
            SlhDsa::Shake192s => "28",
            SlhDsa::Shake192f => "29",
            SlhDsa::Shake256s => "30",
            SlhDsa::Shake256f => "31",
        };
        ObjectIdentifier::new(&format!("2.16.840.1.101.3.4.3.{arc}")).expect("a valid OID")
    }

    /// The set whose OID this is.
    pub fn of_oid(oid: ObjectIdentifier) -> Option<SlhDsa> {
        SlhDsa::ALL.into_iter().find(|s| s.oid() == oid)
    }

    /// n, the security parameter in bytes.
    pub fn n(self) -> usize {
        match self {
            SlhDsa::Sha2_128s | SlhDsa::Shake128s | SlhDsa::Sha2_128f | SlhDsa::Shake128f => 16,
            SlhDsa::Sha2_192s | SlhDsa::Shake192s | SlhDsa::Sha2_192f | SlhDsa::Shake192f => 24,
            _ => 32,
        }
    }

    /// Bytes of a public key (`PK.seed ‖ PK.root`).
    pub fn public_len(self) -> usize {
        2 * self.n()
    }

    /// Bytes of a private key (`SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root`).
    pub fn private_len(self) -> usize {
        4 * self.n()
    }

    /// Bytes of a signature.
    pub fn signature_len(self) -> usize {
        // FIPS 205 Table 2.
        match self {
            SlhDsa::Sha2_128s | SlhDsa::Shake128s => 7856,
            SlhDsa::Sha2_128f | SlhDsa::Shake128f => 17088,
            SlhDsa::Sha2_192s | SlhDsa::Shake192s => 16224,
            SlhDsa::Sha2_192f | SlhDsa::Shake192f => 35664,
            SlhDsa::Sha2_256s | SlhDsa::Shake256s => 29792,
            SlhDsa::Sha2_256f | SlhDsa::Shake256f => 49856,
        }
    }

    /// `slh_keygen_internal(SK.seed, SK.prf, PK.seed)`: the private key (which ends with the public
    /// key).
    pub fn keygen_internal(self, sk_seed: &[u8], sk_prf: &[u8], pk_seed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let n = self.n();
        if sk_seed.len() != n || sk_prf.len() != n || pk_seed.len() != n {
            return None;
        }
        with_params!(self, P => {
            let sk = SigningKey::<P>::slh_keygen_internal(sk_seed, sk_prf, pk_seed);
            Some(Zeroizing::new(sk.to_vec()))
        })
    }

    /// Whether `sk` is a private key of this set whose public half (its last 2n bytes) is the one
    /// its seeds give.
    pub fn private_key_consistent(self, sk: &[u8]) -> bool {
        let n = self.n();
        if sk.len() != 4 * n {
            return false;
        }
        match self.keygen_internal(&sk[..n], &sk[n..2 * n], &sk[2 * n..3 * n]) {
            Some(k) => crate::crypto::constant_time::verify_slices_are_equal(&k, sk).is_ok(),
            None => false,
        }
    }

    /// `slh_sign_internal(M', SK, addrnd)` (FIPS 205 Algorithm 19); `addrnd` `None` is the
    /// deterministic variant (PK.seed).
    pub fn sign_internal(self, sk: &[u8], m_prime: &[&[u8]], addrnd: Option<&[u8]>) -> Option<Vec<u8>> {
        if addrnd.is_some_and(|r| r.len() != self.n()) {
            return None;
        }
        with_params!(self, P => {
            let key = SigningKey::<P>::try_from(sk).ok()?;
            Some(key.slh_sign_internal(m_prime, addrnd).to_vec())
        })
    }

    /// `slh_verify_internal(M', SIG, PK)` (FIPS 205 Algorithm 20).
    pub fn verify_internal(self, pk: &[u8], m_prime: &[&[u8]], sig: &[u8]) -> bool {
        with_params!(self, P => {
            let Ok(key) = VerifyingKey::<P>::try_from(pk) else { return false };
            let Ok(sig) = Signature::<P>::try_from(sig) else { return false };
            key.slh_verify_internal(m_prime, &sig).is_ok()
        })
    }
}
