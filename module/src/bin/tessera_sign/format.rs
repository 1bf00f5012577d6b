//! The algorithms `tessera-sign` knows, their object identifiers, the public key file (PEM
//! SubjectPublicKeyInfo) and the signature file (PEM "TESSERA SIGNATURE", DER inside).
//!
//! The signature file (docs/post-quantum.md, "tessera-sign"):
//!
//! ```text
//! TesseraSignature ::= SEQUENCE {
//!     version             INTEGER (1),
//!     signatureAlgorithm  AlgorithmIdentifier,   -- parameters absent
//!     preHash         [0] EXPLICIT AlgorithmIdentifier OPTIONAL,
//!                         -- the hash the data went through before the signature primitive:
//!                         -- present exactly when signatureAlgorithm hashes the data first
//!     context             OCTET STRING,          -- the application context (0..255 bytes)
//!     signature           OCTET STRING }         -- the algorithm's own signature encoding
//! ```

use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::{Decode, DecodePem, Encode, EncodePem, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

type Res<T> = Result<T, String>;

/// NIST's arc for signature algorithms, 2.16.840.1.101.3.4.3 (FIPS 204 and 205 identifiers).
const NIST_SIG_ARC: &str = "2.16.840.1.101.3.4.3";
pub const ID_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const ID_SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
pub const ID_SHAKE128: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.11");
pub const ID_SHAKE256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.12");
pub const ID_EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const PRIME256V1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
/// id-MLDSA65-ECDSA-P256-SHA512 of the IETF composite ML-DSA draft (draft-ietf-lamps-pq-composite-sigs).
pub const ID_MLDSA65_ECDSA_P256_SHA512: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.6.45");
/// The composite draft's fixed prefix of M' and this algorithm's label (also ML-DSA's context).
pub const COMPOSITE_PREFIX: &[u8] = b"CompositeAlgorithmSignatures2025";
pub const COMPOSITE_LABEL: &[u8] = b"COMPSIG-MLDSA65-ECDSA-P256-SHA512";
/// DER of the namedCurve prime256v1, as `CKA_EC_PARAMS` holds it.
pub const P256_PARAMS_DER: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Byte sizes: ML-DSA-65 signature and public key, a P-256 uncompressed point.
pub const MLDSA65_SIG_LEN: usize = 3309;
pub const MLDSA65_PK_LEN: usize = 1952;
pub const P256_POINT_LEN: usize = 65;

fn nist_sig(arc: u32) -> Oid {
    Oid::new_unwrap(NIST_SIG_ARC).push_arc(arc).expect("a NIST signature identifier")
}

/// An ML-DSA parameter set (FIPS 204).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlDsa {
    P44,
    P65,
    P87,
}

impl MlDsa {
    pub fn name(self) -> &'static str {
        match self {
            MlDsa::P44 => "ML-DSA-44",
            MlDsa::P65 => "ML-DSA-65",
            MlDsa::P87 => "ML-DSA-87",
        }
    }
    /// `CKP_ML_DSA_*`.
    pub fn ckp(self) -> u64 {
        match self {
            MlDsa::P44 => 1,
            MlDsa::P65 => 2,
            MlDsa::P87 => 3,
        }
    }
    pub fn from_ckp(v: u64) -> Option<MlDsa> {
        [MlDsa::P44, MlDsa::P65, MlDsa::P87].into_iter().find(|p| p.ckp() == v)
    }
    fn index(self) -> u32 {
        self.ckp() as u32 - 1
    }
    /// id-ml-dsa-44/65/87: 2.16.840.1.101.3.4.3.17/18/19.
    pub fn oid(self) -> Oid {
        nist_sig(17 + self.index())
    }
    /// id-hash-ml-dsa-44/65/87-with-sha512: 2.16.840.1.101.3.4.3.32/33/34.
    pub fn hash_oid(self) -> Oid {
        nist_sig(32 + self.index())
    }
    pub fn pk_len(self) -> usize {
        [1312, 1952, 2592][self.index() as usize]
    }
}

/// An SLH-DSA parameter set (FIPS 205): hash family, security level, small or fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlhDsa {
    pub shake: bool,
    /// 0, 1, 2 for the 128, 192, 256-bit sets.
    pub level: u8,
    pub fast: bool,
}

/// The hash a pre-hashed signature applies to the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreHash {
    Sha256,
    Sha512,
    /// SHAKE128 with 256 bits of output (FIPS 205's HashSLH-DSA).
    Shake128,
    /// SHAKE256 with 512 bits of output.
    Shake256,
}

impl PreHash {
    pub fn oid(self) -> Oid {
        match self {
            PreHash::Sha256 => ID_SHA256,
            PreHash::Sha512 => ID_SHA512,
            PreHash::Shake128 => ID_SHAKE128,
            PreHash::Shake256 => ID_SHAKE256,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PreHash::Sha256 => "SHA-256",
            PreHash::Sha512 => "SHA-512",
            PreHash::Shake128 => "SHAKE128",
            PreHash::Shake256 => "SHAKE256",
        }
    }
}

impl SlhDsa {
    pub fn all() -> impl Iterator<Item = SlhDsa> {
        (1..=12).filter_map(SlhDsa::from_ckp)
    }
    /// `slh-dsa-sha2-128s` … `slh-dsa-shake-256f`.
    pub fn cli_name(self) -> String {
        format!(
            "slh-dsa-{}-{}{}",
            if self.shake { "shake" } else { "sha2" },
            [128, 192, 256][self.level as usize],
            if self.fast { "f" } else { "s" }
        )
    }
    pub fn name(self) -> String {
        self.cli_name().to_uppercase()
    }
    /// `CKP_SLH_DSA_*` (the header's order: SHA2_128S 1, SHAKE_128S 2, SHA2_128F 3, … SHAKE_256F 12).
    pub fn ckp(self) -> u64 {
        u64::from(self.level) * 4 + if self.fast { 2 } else { 0 } + u64::from(self.shake) + 1
    }
    pub fn from_ckp(v: u64) -> Option<SlhDsa> {
        if !(1..=12).contains(&v) {
            return None;
        }
        let i = v - 1;
        Some(SlhDsa { level: (i / 4) as u8, fast: i % 4 >= 2, shake: i % 2 == 1 })
    }
    fn index(self) -> u32 {
        u32::from(self.level) * 2 + u32::from(self.fast)
    }
    /// id-slh-dsa-sha2-128s … -shake-256f: 2.16.840.1.101.3.4.3.20 … 31.
    pub fn oid(self) -> Oid {
        nist_sig(if self.shake { 26 } else { 20 } + self.index())
    }
    /// id-hash-slh-dsa-*-with-*: 2.16.840.1.101.3.4.3.35 … 46.
    pub fn hash_oid(self) -> Oid {
        nist_sig(if self.shake { 41 } else { 35 } + self.index())
    }
    /// The pre-hash NIST pairs with each set in its HashSLH-DSA identifiers.
    pub fn pre_hash(self) -> PreHash {
        match (self.shake, self.level) {
            (false, 0) => PreHash::Sha256,
            (false, _) => PreHash::Sha512,
            (true, 0) => PreHash::Shake128,
            (true, _) => PreHash::Shake256,
        }
    }
    pub fn pk_len(self) -> usize {
        [32, 48, 64][self.level as usize]
    }
}

/// A kind of key (and of public key file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    MlDsa(MlDsa),
    SlhDsa(SlhDsa),
    EcdsaP256,
    /// ML-DSA-65 and ECDSA P-256 as one composite key (id-MLDSA65-ECDSA-P256-SHA512).
    Composite,
}

impl KeyAlg {
    pub fn name(self) -> String {
        match self {
            KeyAlg::MlDsa(p) => p.name().into(),
            KeyAlg::SlhDsa(p) => p.name(),
            KeyAlg::EcdsaP256 => "ECDSA P-256".into(),
            KeyAlg::Composite => "ML-DSA-65 + ECDSA P-256 (composite)".into(),
        }
    }

    /// `--alg` values.
    pub fn parse(s: &str) -> Res<KeyAlg> {
        match s.to_ascii_lowercase().as_str() {
            "ml-dsa-44" => Ok(KeyAlg::MlDsa(MlDsa::P44)),
            "ml-dsa-65" => Ok(KeyAlg::MlDsa(MlDsa::P65)),
            "ml-dsa-87" => Ok(KeyAlg::MlDsa(MlDsa::P87)),
            "ecdsa-p256" => Ok(KeyAlg::EcdsaP256),
            other => SlhDsa::all().find(|p| p.cli_name() == other).map(KeyAlg::SlhDsa).ok_or_else(|| {
                format!(
                    "unknown algorithm {s:?}: use ml-dsa-44, ml-dsa-65, ml-dsa-87, ecdsa-p256 or one of {}",
                    SlhDsa::all().map(|p| p.cli_name()).collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }
}

/// How a signature was made: the signature algorithm of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigAlg {
    /// Pure ML-DSA (`CKM_ML_DSA`: one part up to `PURE_MAX`, streamed above).
    MlDsa(MlDsa),
    /// HashML-DSA with SHA-512 (`CKM_HASH_ML_DSA_SHA512`, streamed).
    HashMlDsa(MlDsa),
    /// Pure SLH-DSA (`CKM_SLH_DSA`, one part).
    SlhDsa(SlhDsa),
    /// HashSLH-DSA with the set's hash (`CKM_HASH_SLH_DSA_<hash>`, streamed).
    HashSlhDsa(SlhDsa),
    /// ECDSA with SHA-256 (`CKM_ECDSA_SHA256`, streamed).
    EcdsaSha256,
    /// Composite ML-DSA-65 + ECDSA P-256 with SHA-512 (the file hashed by this program).
    Composite,
}

impl SigAlg {
    pub fn oid(self) -> Oid {
        match self {
            SigAlg::MlDsa(p) => p.oid(),
            SigAlg::HashMlDsa(p) => p.hash_oid(),
            SigAlg::SlhDsa(p) => p.oid(),
            SigAlg::HashSlhDsa(p) => p.hash_oid(),
            SigAlg::EcdsaSha256 => ECDSA_WITH_SHA256,
            SigAlg::Composite => ID_MLDSA65_ECDSA_P256_SHA512,
        }
    }

    pub fn from_oid(oid: &Oid) -> Option<SigAlg> {
        let sets = [MlDsa::P44, MlDsa::P65, MlDsa::P87];
        sets.iter()
            .flat_map(|p| [SigAlg::MlDsa(*p), SigAlg::HashMlDsa(*p)])
            .chain(SlhDsa::all().flat_map(|p| [SigAlg::SlhDsa(p), SigAlg::HashSlhDsa(p)]))
            .chain([SigAlg::EcdsaSha256, SigAlg::Composite])
            .find(|a| a.oid() == *oid)
    }

    /// The hash the data goes through before the signature primitive, if any.
    pub fn pre_hash(self) -> Option<PreHash> {
        match self {
            SigAlg::MlDsa(_) | SigAlg::SlhDsa(_) => None,
            SigAlg::HashMlDsa(_) | SigAlg::Composite => Some(PreHash::Sha512),
            SigAlg::HashSlhDsa(p) => Some(p.pre_hash()),
            SigAlg::EcdsaSha256 => Some(PreHash::Sha256),
        }
    }

    /// The kind of public key that verifies it.
    pub fn key(self) -> KeyAlg {
        match self {
            SigAlg::MlDsa(p) | SigAlg::HashMlDsa(p) => KeyAlg::MlDsa(p),
            SigAlg::SlhDsa(p) | SigAlg::HashSlhDsa(p) => KeyAlg::SlhDsa(p),
            SigAlg::EcdsaSha256 => KeyAlg::EcdsaP256,
            SigAlg::Composite => KeyAlg::Composite,
        }
    }

    pub fn describe(self) -> String {
        match self {
            SigAlg::MlDsa(p) => format!("{} (pure)", p.name()),
            SigAlg::HashMlDsa(p) => format!("Hash{} with SHA-512 (streamed)", p.name()),
            SigAlg::SlhDsa(p) => format!("{} (pure, the whole file in one part)", p.name()),
            SigAlg::HashSlhDsa(p) => format!("Hash{} with {} (streamed)", p.name(), p.pre_hash().name()),
            SigAlg::EcdsaSha256 => "ECDSA P-256 with SHA-256 (streamed)".into(),
            SigAlg::Composite => "composite ML-DSA-65 + ECDSA P-256, SHA-512 pre-hash (streamed)".into(),
        }
    }
}

/// The signature file's content.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SignatureFile {
    pub version: u8,
    pub algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub pre_hash: Option<AlgorithmIdentifierOwned>,
    pub context: OctetString,
    pub signature: OctetString,
}

impl der::pem::PemLabel for SignatureFile {
    const PEM_LABEL: &'static str = "TESSERA SIGNATURE";
}

fn alg_id(oid: Oid) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters: None }
}

impl SignatureFile {
    pub fn new(alg: SigAlg, context: &[u8], signature: Vec<u8>) -> Res<SignatureFile> {
        Ok(SignatureFile {
            version: 1,
            algorithm: alg_id(alg.oid()),
            pre_hash: alg.pre_hash().map(|h| alg_id(h.oid())),
            context: OctetString::new(context).map_err(|e| e.to_string())?,
            signature: OctetString::new(signature).map_err(|e| e.to_string())?,
        })
    }

    pub fn pem(&self) -> Res<String> {
        self.to_pem(der::pem::LineEnding::LF).map_err(|e| format!("cannot encode the signature file: {e}"))
    }

    /// Reads a signature file (PEM, or its DER), and checks what the format fixes: version 1, a
    /// known algorithm without parameters, the pre-hash field that algorithm implies, a context of
    /// at most 255 bytes.
    pub fn parse(bytes: &[u8]) -> Res<(SignatureFile, SigAlg)> {
        let f = if bytes.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(bytes).map_err(|_| "the signature file is not text".to_string())?;
            SignatureFile::from_pem(text.trim())
        } else {
            SignatureFile::from_der(bytes)
        }
        .map_err(|e| format!("not a Tessera signature file: {e}"))?;
        if f.version != 1 {
            return Err(format!("signature file version {} is not supported (only 1)", f.version));
        }
        if f.algorithm.parameters.is_some() {
            return Err("the signature algorithm has parameters; it takes none".into());
        }
        let alg = SigAlg::from_oid(&f.algorithm.oid)
            .ok_or_else(|| format!("unknown signature algorithm {}", f.algorithm.oid))?;
        let expected = alg.pre_hash().map(|h| alg_id(h.oid()));
        if f.pre_hash != expected {
            return Err(format!("the signature file's pre-hash field does not match {}", alg.describe()));
        }
        if f.context.as_bytes().len() > 255 {
            return Err("the context is longer than 255 bytes".into());
        }
        Ok((f, alg))
    }
}

/// A public key: its kind and raw encoding (FIPS 204/205 `pk`, an uncompressed P-256 point, or
/// the composite's `mldsaPK || point`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub alg: KeyAlg,
    pub raw: Vec<u8>,
}

impl PublicKey {
    pub fn spki(&self) -> Res<SubjectPublicKeyInfoOwned> {
        let algorithm = match self.alg {
            KeyAlg::MlDsa(p) => alg_id(p.oid()),
            KeyAlg::SlhDsa(p) => alg_id(p.oid()),
            KeyAlg::Composite => alg_id(ID_MLDSA65_ECDSA_P256_SHA512),
            KeyAlg::EcdsaP256 => {
                AlgorithmIdentifierOwned { oid: ID_EC_PUBLIC_KEY, parameters: Some(der::Any::from(PRIME256V1)) }
            }
        };
        Ok(SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: der::asn1::BitString::from_bytes(&self.raw).map_err(|e| e.to_string())?,
        })
    }

    pub fn to_der(&self) -> Res<Vec<u8>> {
        self.spki()?.to_der().map_err(|e| e.to_string())
    }

    pub fn to_pem(&self) -> Res<String> {
        self.spki()?.to_pem(der::pem::LineEnding::LF).map_err(|e| e.to_string())
    }

    /// Reads a SubjectPublicKeyInfo (PEM "PUBLIC KEY", or its DER) of a kind this program knows,
    /// with the key length that kind has.
    pub fn parse(bytes: &[u8]) -> Res<PublicKey> {
        let spki = if bytes.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(bytes).map_err(|_| "the public key file is not text".to_string())?;
            SubjectPublicKeyInfoOwned::from_pem(text.trim())
        } else {
            SubjectPublicKeyInfoOwned::from_der(bytes)
        }
        .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        Self::from_spki(&spki)
    }

    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Res<PublicKey> {
        let oid = spki.algorithm.oid;
        let params = &spki.algorithm.parameters;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| "the public key's bit string has unused bits".to_string())?
            .to_vec();
        let alg = if oid == ID_EC_PUBLIC_KEY {
            let curve: Option<Oid> = params.as_ref().and_then(|p| p.decode_as().ok());
            if curve != Some(PRIME256V1) {
                return Err("an EC public key on a curve other than P-256".into());
            }
            KeyAlg::EcdsaP256
        } else {
            if params.is_some() {
                return Err(format!("the key algorithm {oid} has parameters; it takes none"));
            }
            if oid == ID_MLDSA65_ECDSA_P256_SHA512 {
                KeyAlg::Composite
            } else if let Some(p) = [MlDsa::P44, MlDsa::P65, MlDsa::P87].into_iter().find(|p| p.oid() == oid) {
                KeyAlg::MlDsa(p)
            } else if let Some(p) = SlhDsa::all().find(|p| p.oid() == oid) {
                KeyAlg::SlhDsa(p)
            } else {
                return Err(format!("unknown public key algorithm {oid}"));
            }
        };
        let want = match alg {
            KeyAlg::MlDsa(p) => p.pk_len(),
            KeyAlg::SlhDsa(p) => p.pk_len(),
            KeyAlg::EcdsaP256 => P256_POINT_LEN,
            KeyAlg::Composite => MLDSA65_PK_LEN + P256_POINT_LEN,
        };
        if raw.len() != want {
            return Err(format!("a {} public key of {} bytes (it has {want})", alg.name(), raw.len()));
        }
        let point = match alg {
            KeyAlg::EcdsaP256 => Some(&raw[..]),
            KeyAlg::Composite => Some(&raw[MLDSA65_PK_LEN..]),
            _ => None,
        };
        if point.is_some_and(|p| p[0] != 0x04) {
            return Err("the EC public key is not an uncompressed point".into());
        }
        Ok(PublicKey { alg, raw })
    }
}

/// The DER of a hash function's identifier, as FIPS 204 Algorithm 4 and FIPS 205 Algorithm 23
/// put it in the pre-hashed message M'.
pub fn hash_oid_der(h: PreHash) -> Vec<u8> {
    h.oid().to_der().expect("a hash identifier encodes")
}

/// ECDSA-Sig-Value (RFC 3279) from PKCS#11's `r || s`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Res<Vec<u8>> {
    #[derive(Sequence)]
    struct EcdsaSig {
        r: der::asn1::Uint,
        s: der::asn1::Uint,
    }
    if raw.len() != 64 {
        return Err(format!("the token returned an ECDSA P-256 signature of {} bytes (not 64)", raw.len()));
    }
    let uint = |b: &[u8]| der::asn1::Uint::new(b).map_err(|e| e.to_string());
    EcdsaSig { r: uint(&raw[..32])?, s: uint(&raw[32..])? }.to_der().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(MlDsa::P65.oid().to_string(), "2.16.840.1.101.3.4.3.18");
        assert_eq!(MlDsa::P87.hash_oid().to_string(), "2.16.840.1.101.3.4.3.34");
        let names: Vec<_> = SlhDsa::all().map(|p| (p.ckp(), p.cli_name(), p.oid().to_string())).collect();
        assert_eq!(names[0], (1, "slh-dsa-sha2-128s".into(), "2.16.840.1.101.3.4.3.20".into()));
        assert_eq!(names[1], (2, "slh-dsa-shake-128s".into(), "2.16.840.1.101.3.4.3.26".into()));
        assert_eq!(names[2], (3, "slh-dsa-sha2-128f".into(), "2.16.840.1.101.3.4.3.21".into()));
        assert_eq!(names[11], (12, "slh-dsa-shake-256f".into(), "2.16.840.1.101.3.4.3.31".into()));
        let shake192f = SlhDsa::from_ckp(8).unwrap();
        assert_eq!(shake192f.hash_oid().to_string(), "2.16.840.1.101.3.4.3.44");
        assert_eq!(shake192f.pre_hash(), PreHash::Shake256);
        assert_eq!(hash_oid_der(PreHash::Sha512), [6, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3]);
    }
}
