//! X-Wing (draft-connolly-cfrg-xwing-kem-06): the hybrid of X25519 and ML-KEM-768 with its
//! SHA3-256 combiner, from RustCrypto's `x-wing` crate (which takes ML-KEM from RustCrypto's
//! `ml-kem`, not from aws-lc: aws-lc has no X-Wing). The private key is the draft's 32-byte seed
//! sk, expanded at each use; the public key is pk_M ‖ pk_X (1216 bytes); ciphertexts are
//! ct_M ‖ ct_X (1120 bytes); the shared secret is 32 bytes.

use x_wing::{Decapsulate, KeyExport};
use zeroize::Zeroizing;

pub use x_wing::{CIPHERTEXT_SIZE, DECAPSULATION_KEY_SIZE, ENCAPSULATION_KEY_SIZE, ENCAPSULATION_RANDOMNESS_SIZE};

/// The public key of the private key (seed) `sk`.
pub fn public_key(sk: &[u8; DECAPSULATION_KEY_SIZE]) -> Vec<u8> {
    let dk = x_wing::DecapsulationKey::from(*sk);
    x_wing::Decapsulator::encapsulation_key(&dk).to_bytes().to_vec()
}

/// A fresh key pair from the DRBG: (sk, pk).
pub fn generate() -> Option<(Zeroizing<[u8; DECAPSULATION_KEY_SIZE]>, Vec<u8>)> {
    let mut sk = Zeroizing::new([0u8; DECAPSULATION_KEY_SIZE]);
    super::random::fill(&mut sk[..]).ok()?;
    let pk = public_key(&sk);
    Some((sk, pk))
}

/// Encapsulation under `pk` with the 64 bytes of randomness `eseed` (the first 32 for ML-KEM, the
/// last 32 the X25519 ephemeral key, as the draft's Encapsulate draws them): (ciphertext, secret).
/// `None` for a public key of the wrong length or whose ML-KEM part fails its modulus check.
pub fn encapsulate_with(
    pk: &[u8],
    eseed: &[u8; ENCAPSULATION_RANDOMNESS_SIZE],
) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    let key = x_wing::EncapsulationKey::try_from(pk).ok()?;
    let (ct, ss) = key.encapsulate_deterministic(&(*eseed).into());
    Some((ct.to_vec(), Zeroizing::new(ss.to_vec())))
}

/// Encapsulation with randomness from the DRBG.
pub fn encapsulate(pk: &[u8]) -> Option<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    let mut eseed = Zeroizing::new([0u8; ENCAPSULATION_RANDOMNESS_SIZE]);
    super::random::fill(&mut eseed[..]).ok()?;
    encapsulate_with(pk, &eseed)
}

/// Decapsulation of `ct` with the private key `sk` (ML-KEM's implicit rejection inside: a
/// ciphertext of the right length always gives a secret). `None` for a ciphertext of another
/// length.
pub fn decapsulate(sk: &[u8; DECAPSULATION_KEY_SIZE], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let ct = x_wing::Ciphertext::try_from(ct).ok()?;
    let dk = x_wing::DecapsulationKey::from(*sk);
    Some(Zeroizing::new(dk.decapsulate(&ct).to_vec()))
}

/// The draft's test vectors (its `spec/test-vectors.json`, as the `x-wing` crate ships them),
/// at the core: key generation from the seed, encapsulation with the given randomness and
/// decapsulation.
#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &serde_json::Value) -> Vec<u8> {
        let s = v.as_str().unwrap_or("");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn draft_06_vectors() {
        let v: serde_json::Value = serde_json::from_str(include_str!("../../testdata/xwing-draft-06.json")).unwrap();
        let mut n = 0;
        for t in v.as_array().unwrap() {
            // KeyGen draws the 32-byte sk; the vectors' seed is the generator's output.
            let seed = hex(&t["seed"]);
            let sk: [u8; 32] = seed[..32].try_into().unwrap();
            assert_eq!(sk.to_vec(), hex(&t["sk"]));
            assert_eq!(public_key(&sk), hex(&t["pk"]));
            let eseed: [u8; 64] = hex(&t["eseed"])[..64].try_into().unwrap();
            let (ct, ss) = encapsulate_with(&hex(&t["pk"]), &eseed).unwrap();
            assert_eq!((ct.clone(), ss.to_vec()), (hex(&t["ct"]), hex(&t["ss"])));
            assert_eq!(decapsulate(&sk, &ct).map(|s| s.to_vec()), Some(hex(&t["ss"])));
            assert_eq!(decapsulate(&sk, &ct[1..]), None);
            n += 1;
        }
        println!("X-Wing draft-06 vectors: {n} passed, 0 failed, 0 skipped");
        assert_eq!(n, 3);
    }
}
