//! The approved-mode policy: the one place that decides whether a use of a mechanism is allowed in
//! the configured mode and whether it is approved. The decisions are data (`policy/*.toml`,
//! embedded at build time); no mechanism decides its own approval.

use crate::error::{err, Result};
use crate::mechanisms::names::MECHANISMS;
use crate::object::Object;
use crate::operation::Op;
use cryptoki_sys::*;
use serde::Deserialize;
// The tables are looked up at every operation's start; mechanism numbers need no SipHash.
use rustc_hash::FxHashMap as HashMap;
use std::sync::OnceLock;

/// The module's mode of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only approved services; everything else is refused.
    Approved,
    /// Every service; each operation is flagged approved or not.
    NonApproved,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_lowercase().as_str() {
            "approved" | "fips" => Some(Mode::Approved),
            "non-approved" | "nonapproved" | "non_approved" => Some(Mode::NonApproved),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Approved => "approved",
            Mode::NonApproved => "non-approved",
        }
    }
}

/// A requirement on a use's parameters that an approved-mode rule may add (`condition` in
/// `policy/*.toml`). A condition the module does not know refuses the table when it loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// GCM encryption with an IV the token generates (the message API, `services::message`).
    TokenGeneratedIv,
    /// RSA-PSS with an approved hash and MGF1 hash and a salt no longer than the hash (FIPS 186-5
    /// §5.4; `mechanisms::rsa`).
    PssFips186,
    /// PBKDF2 as SP 800-132 allows it (`mechanisms::kdf`).
    #[serde(rename = "pbkdf2_sp800_132")]
    Pbkdf2Sp800132,
    /// Pure Ed25519 or Ed25519ph, not Ed25519ctx (FIPS 186-5; `mechanisms::eddsa`).
    EddsaFips186,
    /// An RSA public exponent above 2^16 (FIPS 186-5 §5.1; `services::keys`).
    RsaExponentFips186,
    /// ECDH (SP 800-56A Rev. 3) whose shared secret Z stays in the module: `CKD_NULL` making a
    /// sensitive, non-extractable generic secret usable only to derive (`services::keys`), or the
    /// ANS X9.63 KDF with SHA-224/256/384/512 (SP 800-135 Rev. 1 §4.1; `mechanisms::ec`).
    #[serde(rename = "ecdh_sp800_56a")]
    EcdhSp80056a,
    /// Data condition: the input is a DER DigestInfo of SHA-224/256/384/512, SHA-512/224,
    /// SHA-512/256 or SHA3-224/256/384/512 (FIPS 186-5 §5.4; `mechanisms::rsa`).
    DigestInfoFips186,
    /// Data condition: [`Condition::DigestInfoFips186`] or a SHA-1 DigestInfo (SP 800-131A Rev. 2
    /// legacy verification).
    #[serde(rename = "digest_info_sp800_131a")]
    DigestInfoSp800131a,
    /// Pure ML-DSA with an empty context, hedged: what aws-lc's module serves (FIPS 204 §5.2;
    /// `mechanisms::pq_sign`). Contexts, deterministic signing and HashML-DSA are served outside it.
    MlDsaInModule,
}

impl Condition {
    /// Whether the condition is on the data the operation is given (checked by
    /// `Mechanism::meets_data` when the data arrives, `C_Sign`/`C_Verify`) rather than on the
    /// parameter at `C_*Init`.
    pub fn on_data(self) -> bool {
        matches!(self, Condition::DigestInfoFips186 | Condition::DigestInfoSp800131a)
    }

    fn bit(self) -> u8 {
        match self {
            Condition::DigestInfoFips186 => 1,
            Condition::DigestInfoSp800131a => 2,
            _ => 0,
        }
    }
}

/// The data conditions an allowed use still waits for: the use is approved if its data meets any
/// of them, and not approved (refused in the approved mode) if it meets none. Empty for a use the
/// decision at `C_*Init` settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataConditions(u8);

impl DataConditions {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `meets` answers yes to any of them.
    pub fn any(self, meets: impl Fn(Condition) -> bool) -> bool {
        [Condition::DigestInfoFips186, Condition::DigestInfoSp800131a]
            .into_iter()
            .any(|c| self.0 & c.bit() != 0 && meets(c))
    }

    fn add(&mut self, c: Condition) {
        self.0 |= c.bit();
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub mechanism: String,
    pub functions: Vec<Op>,
    #[serde(default)]
    pub key_bits: Option<Vec<u32>>,
    #[serde(default)]
    pub min_key_bits: Option<u32>,
    #[serde(default)]
    pub curves: Option<Vec<String>>,
    #[serde(default)]
    pub condition: Option<Condition>,
    pub rationale: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    rule: Vec<Rule>,
}

/// The size of a key as the policy measures it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// RSA modulus bits, or secret key length in bits.
    pub bits: Option<u32>,
    /// Named curve of an EC, Edwards or Montgomery key.
    pub curve: Option<&'static str>,
}

impl KeyInfo {
    /// Measures a key object.
    pub fn of(obj: &Object) -> KeyInfo {
        match obj.ulong(CKA_KEY_TYPE) {
            Some(kt) => match crate::keys::by_type(kt) {
                Some(k) => (k.key_info)(obj),
                None => crate::keys::value_bits(obj),
            },
            None => KeyInfo::default(),
        }
    }
}

/// The decision on one use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub approved: bool,
    /// For an approved use: the data conditions still to be met ([`DataConditions`]).
    pub on_data: DataConditions,
}

/// Why a rule does not permit a use; the first reason met names the error in the approved mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miss {
    Operation,
    KeySize,
    Condition,
}

impl Rule {
    fn check(&self, f: Op, key: &KeyInfo, meets: &dyn Fn(Condition) -> bool) -> std::result::Result<(), Miss> {
        if !self.functions.contains(&f) {
            return Err(Miss::Operation);
        }
        // A generation template that names no size leaves the size to the mechanism, which
        // refuses an incomplete template with the template's own error.
        let generating = matches!(f, Op::Generate | Op::GeneratePair);
        if generating && key.bits.is_none() && key.curve.is_none() {
            return self.condition(meets);
        }
        if let Some(sizes) = &self.key_bits {
            if !key.bits.is_some_and(|b| sizes.contains(&b)) {
                return Err(Miss::KeySize);
            }
        }
        if let Some(min) = self.min_key_bits {
            if key.bits.is_none_or(|b| b < min) {
                return Err(Miss::KeySize);
            }
        }
        if let Some(curves) = &self.curves {
            if !key.curve.is_some_and(|c| curves.iter().any(|x| x == c)) {
                return Err(Miss::KeySize);
            }
        }
        self.condition(meets)
    }

    fn condition(&self, meets: &dyn Fn(Condition) -> bool) -> std::result::Result<(), Miss> {
        match self.condition {
            // Checked on the data, when it comes ([`Decision::on_data`]).
            Some(c) if c.on_data() => Ok(()),
            Some(c) if !meets(c) => Err(Miss::Condition),
            _ => Ok(()),
        }
    }
}

/// Both policy tables, by mechanism.
pub struct Policy {
    approved: HashMap<CK_MECHANISM_TYPE, Vec<Rule>>,
    extra: HashMap<CK_MECHANISM_TYPE, Vec<Rule>>,
}

/// The approved-mode table, as shipped.
pub const APPROVED_TOML: &str = include_str!("../../policy/approved.toml");
/// The non-approved additions, as shipped.
pub const NON_APPROVED_TOML: &str = include_str!("../../policy/non-approved.toml");

fn mechanism_value(name: &str) -> Option<CK_MECHANISM_TYPE> {
    MECHANISMS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn index(text: &str, what: &str) -> std::result::Result<HashMap<CK_MECHANISM_TYPE, Vec<Rule>>, String> {
    let f: File = toml::from_str(text).map_err(|e| format!("policy/{what}: {e}"))?;
    let mut map: HashMap<CK_MECHANISM_TYPE, Vec<Rule>> = HashMap::default();
    for r in f.rule {
        let m =
            mechanism_value(&r.mechanism).ok_or_else(|| format!("policy/{what}: unknown mechanism {}", r.mechanism))?;
        map.entry(m).or_default().push(r);
    }
    Ok(map)
}

impl Policy {
    /// Parses the shipped tables.
    pub fn load() -> std::result::Result<Policy, String> {
        Policy::parse(APPROVED_TOML, NON_APPROVED_TOML)
    }

    /// Parses an approved-mode table and a table of non-approved additions, as given.
    pub fn parse(approved: &str, non_approved: &str) -> std::result::Result<Policy, String> {
        Ok(Policy { approved: index(approved, "approved.toml")?, extra: index(non_approved, "non-approved.toml")? })
    }

    /// The approved-mode rules of a mechanism.
    pub fn approved_rules(&self, m: CK_MECHANISM_TYPE) -> &[Rule] {
        self.approved.get(&m).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// The key sizes (bits) a key-pair generation mechanism's approved rules allow: the range
    /// `C_GetMechanismInfo` reports in the approved mode. `None` when its rules name no sizes.
    pub fn approved_generation_bits(&self, m: CK_MECHANISM_TYPE) -> Option<(u32, u32)> {
        let mut range: Option<(u32, u32)> = None;
        for r in self.approved_rules(m).iter().filter(|r| r.functions.contains(&Op::GeneratePair)) {
            // A rule with only a lower bound allows any larger size.
            let (lo, hi) = match (&r.key_bits, r.min_key_bits) {
                (Some(k), _) if !k.is_empty() => (*k.iter().min()?, *k.iter().max()?),
                (_, Some(min)) => (min, u32::MAX),
                _ => continue,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range
    }

    /// The field sizes (bits) of the curves a mechanism's approved rules name: the range
    /// `C_GetMechanismInfo` reports for an EC mechanism in the approved mode. `None` when its
    /// rules name no curves.
    pub fn approved_curve_bits(&self, m: CK_MECHANISM_TYPE) -> Option<(u32, u32)> {
        let bits = |c: &str| match c {
            "secp224r1" => Some(224),
            "ed25519" | "x25519" => Some(255),
            "secp256r1" | "secp256k1" | "brainpoolP256r1" => Some(256),
            "secp384r1" | "brainpoolP384r1" => Some(384),
            "brainpoolP512r1" => Some(512),
            "secp521r1" => Some(521),
            _ => None,
        };
        let sizes: Vec<u32> =
            self.approved_rules(m).iter().flat_map(|r| r.curves.iter().flatten()).filter_map(|c| bits(c)).collect();
        Some((*sizes.iter().min()?, *sizes.iter().max()?))
    }

    /// The `CKF_*` function flags of a mechanism's approved uses (what `C_GetMechanismInfo`
    /// reports in the approved mode). Encryption only with an IV the token generates is offered
    /// through the message API alone (`CKF_MESSAGE_ENCRYPT`): `C_EncryptInit` takes the IV from
    /// the application.
    pub fn approved_flags(&self, m: CK_MECHANISM_TYPE) -> CK_FLAGS {
        let mut flags = 0;
        for r in self.approved_rules(m) {
            let message_only = r.condition == Some(Condition::TokenGeneratedIv);
            for f in &r.functions {
                flags |= match f {
                    Op::Encrypt if message_only => CKF_MESSAGE_ENCRYPT,
                    Op::Encrypt => CKF_ENCRYPT | CKF_MESSAGE_ENCRYPT,
                    Op::Decrypt => CKF_DECRYPT | CKF_MESSAGE_DECRYPT,
                    _ => f.flag(),
                };
            }
        }
        flags
    }

    /// Whether a mechanism has any approved use (what the approved mode lists).
    pub fn has_approved_use(&self, m: CK_MECHANISM_TYPE) -> bool {
        self.approved.contains_key(&m)
    }

    /// Decides one use of a mechanism: allowed in `mode`? approved? `meets` answers the named
    /// conditions of a rule (the mechanism knows its parameters).
    pub fn decide(
        &self,
        mode: Mode,
        m: CK_MECHANISM_TYPE,
        f: Op,
        key: &KeyInfo,
        meets: &dyn Fn(Condition) -> bool,
    ) -> Result<Decision> {
        let mut miss = None;
        let mut on_data = DataConditions::default();
        for r in self.approved_rules(m) {
            match r.check(f, key, meets) {
                Ok(()) => match r.condition {
                    Some(c) if c.on_data() => on_data.add(c),
                    _ => return Ok(Decision { approved: true, on_data: DataConditions::default() }),
                },
                Err(x) => miss = Some(miss.map_or(x, |y: Miss| if (x as u8) > (y as u8) { x } else { y })),
            }
        }
        if !on_data.is_empty() {
            return Ok(Decision { approved: true, on_data });
        }
        match mode {
            Mode::Approved => Err(err(match miss {
                None | Some(Miss::Operation) => CKR_MECHANISM_INVALID,
                Some(Miss::KeySize) => CKR_KEY_SIZE_RANGE,
                Some(Miss::Condition) => CKR_MECHANISM_PARAM_INVALID,
            })),
            Mode::NonApproved => {
                let extra = self.extra.get(&m).map(|v| v.as_slice()).unwrap_or(&[]);
                let listed = extra.iter().any(|r| r.functions.contains(&f)) || !self.approved_rules(m).is_empty();
                if listed {
                    Ok(Decision { approved: false, on_data: DataConditions::default() })
                } else {
                    Err(err(CKR_MECHANISM_INVALID))
                }
            }
        }
    }

    /// Whether a key object, as it stands, meets the approved key sizes of its type.
    pub fn key_approved(&self, obj: &Object) -> bool {
        let k = KeyInfo::of(obj);
        match obj.ulong(CKA_KEY_TYPE) {
            Some(kt) => match crate::keys::by_type(kt) {
                Some(t) => (t.approved)(kt, &k),
                None => k.bits.is_some_and(|b| b >= 112),
            },
            None => false,
        }
    }
}

/// The policy, parsed once.
pub fn policy() -> Result<&'static Policy> {
    static P: OnceLock<std::result::Result<Policy, String>> = OnceLock::new();
    P.get_or_init(Policy::load).as_ref().map_err(|e| {
        tracing::error!("{e}");
        err(CKR_GENERAL_ERROR)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_parse_and_name_real_mechanisms() {
        let p = Policy::load().unwrap();
        assert!(p.has_approved_use(CKM_SHA256));
        assert!(!p.has_approved_use(CKM_RSA_X_509));
    }

    #[test]
    fn a_table_with_an_unknown_condition_is_refused() {
        let rule = |condition: &str| {
            format!(
                "[[rule]]\nmechanism = \"CKM_RSA_PKCS_PSS\"\nfunctions = [\"sign\"]\ncondition = \"{condition}\"\n\
                 rationale = \"test\"\n"
            )
        };
        let p = Policy::parse(&rule("pss_fips186"), "rule = []").expect("a known condition loads");
        assert_eq!(p.approved_rules(CKM_RSA_PKCS_PSS)[0].condition, Some(Condition::PssFips186));
        let e = Policy::parse(&rule("pss_fips_186"), "rule = []").err().expect("an unknown condition is refused");
        assert!(e.contains("approved.toml") && e.contains("pss_fips_186"), "{e}");
        // In the table of additions too, and every condition of the shipped tables is known.
        assert!(Policy::parse("rule = []", &rule("salt_long_enough")).is_err());
        for c in [
            "token_generated_iv",
            "pss_fips186",
            "pbkdf2_sp800_132",
            "eddsa_fips186",
            "rsa_exponent_fips186",
            "ecdh_sp800_56a",
            "digest_info_fips186",
            "digest_info_sp800_131a",
        ] {
            assert!(Policy::parse(&rule(c), "rule = []").is_ok(), "{c}");
        }
    }

    #[test]
    fn generated_gcm_ivs_are_approved() {
        let p = Policy::load().unwrap();
        let generated = |c: Condition| c == Condition::TokenGeneratedIv;
        let aes = KeyInfo { bits: Some(256), curve: None };
        assert!(p.decide(Mode::Approved, CKM_AES_GCM, Op::Encrypt, &aes, &generated).unwrap().approved);
        assert_eq!(p.approved_generation_bits(CKM_RSA_PKCS_KEY_PAIR_GEN), Some((2048, 4096)));
        assert_eq!(p.approved_generation_bits(CKM_EC_KEY_PAIR_GEN), None);
        assert_eq!(p.approved_curve_bits(CKM_ECDH1_DERIVE), Some((256, 521)));
        assert_eq!(p.approved_curve_bits(CKM_EDDSA), Some((255, 255)));
        assert_eq!(p.approved_curve_bits(CKM_RSA_PKCS_OAEP), None);
        // So GCM encrypts in the approved mode through the message API, never C_EncryptInit.
        let f = p.approved_flags(CKM_AES_GCM);
        assert_eq!(f & (CKF_ENCRYPT | CKF_MESSAGE_ENCRYPT | CKF_DECRYPT), CKF_MESSAGE_ENCRYPT | CKF_DECRYPT);
    }

    #[test]
    fn decisions() {
        let p = Policy::load().unwrap();
        let no = |_: Condition| false;
        let rsa = |bits| KeyInfo { bits: Some(bits), curve: None };
        let d = p.decide(Mode::Approved, CKM_SHA256_RSA_PKCS, Op::Sign, &rsa(2048), &no).unwrap();
        assert!(d.approved);
        assert_eq!(
            p.decide(Mode::Approved, CKM_SHA256_RSA_PKCS, Op::Sign, &rsa(1024), &no),
            Err(err(CKR_KEY_SIZE_RANGE))
        );
        assert_eq!(
            p.decide(Mode::Approved, CKM_SHA1_RSA_PKCS, Op::Sign, &rsa(2048), &no),
            Err(err(CKR_MECHANISM_INVALID))
        );
        assert!(p.decide(Mode::Approved, CKM_SHA1_RSA_PKCS, Op::Verify, &rsa(2048), &no).unwrap().approved);
        assert_eq!(p.decide(Mode::Approved, CKM_RSA_X_509, Op::Sign, &rsa(2048), &no), Err(err(CKR_MECHANISM_INVALID)));
        let d = p.decide(Mode::NonApproved, CKM_RSA_X_509, Op::Sign, &rsa(2048), &no).unwrap();
        assert!(!d.approved);
        assert_eq!(
            p.decide(Mode::Approved, CKM_AES_GCM, Op::Encrypt, &rsa(256), &no),
            Err(err(CKR_MECHANISM_PARAM_INVALID))
        );
        assert!(!p.decide(Mode::NonApproved, CKM_AES_GCM, Op::Encrypt, &rsa(256), &no).unwrap().approved);
        assert_eq!(
            p.decide(Mode::Approved, CKM_PKCS5_PBKD2, Op::Generate, &KeyInfo::default(), &no),
            Err(err(CKR_MECHANISM_PARAM_INVALID))
        );
        let ec = KeyInfo { bits: None, curve: Some("x25519") };
        assert_eq!(p.decide(Mode::Approved, CKM_ECDH1_DERIVE, Op::Derive, &ec, &no), Err(err(CKR_KEY_SIZE_RANGE)));
        assert!(!p.decide(Mode::NonApproved, CKM_ECDH1_DERIVE, Op::Derive, &ec, &no).unwrap().approved);
    }
}
