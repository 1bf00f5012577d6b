//! The token side: loading the library, choosing the token, logging in, finding, generating and
//! using keys, all through the standard PKCS#11 calls of the `cryptoki` crate.

use super::data::{for_each_part, hash_file, read_all};
use super::format::*;
use super::verify::composite_message;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle, ParameterSetType};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::Path;

type Res<T> = Result<T, String>;

fn rv(what: &str) -> impl Fn(cryptoki::error::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Loads and initialises the PKCS#11 library at `path`.
pub fn load(path: &Path) -> Res<Pkcs11> {
    let p = Pkcs11::new(path).map_err(|e| format!("could not load the library {}: {e}", path.display()))?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(rv(&format!("could not initialize the library {}", path.display())))?;
    Ok(p)
}

/// Which token: any of these that is given must match.
#[derive(Default, Debug)]
pub struct Selector {
    pub label: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
}

/// The one initialised token the selector names (with no selector: the only initialised token).
pub fn find_slot(p: &Pkcs11, sel: &Selector) -> Res<(Slot, String)> {
    let mut found = Vec::new();
    for slot in p.get_slots_with_initialized_token().map_err(rv("C_GetSlotList"))? {
        let ti = p.get_token_info(slot).map_err(rv("C_GetTokenInfo"))?;
        let ok = sel.label.as_deref().is_none_or(|l| l == ti.label())
            && sel.serial.as_deref().is_none_or(|s| s == ti.serial_number())
            && sel.manufacturer.as_deref().is_none_or(|s| s == ti.manufacturer_id())
            && sel.model.as_deref().is_none_or(|s| s == ti.model())
            && sel.slot_id.is_none_or(|id| id == slot.id());
        if ok {
            found.push((slot, ti.label().to_string()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("no initialised token matches (name one with --token LABEL or --uri)".into()),
        n => Err(format!(
            "{n} tokens match ({}): name one with --token LABEL or --uri",
            found.iter().map(|(_, l)| format!("{l:?}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

pub fn login(s: &Session, pin: &str) -> Res<()> {
    s.login(UserType::User, Some(&AuthPin::new(pin.into()))).map_err(rv("could not log in on the token"))
}

/// A key of the token.
#[derive(Clone, Debug)]
pub struct Key {
    pub handle: ObjectHandle,
    pub alg: Option<KeyAlg>,
    pub label: String,
}

fn get(s: &Session, h: ObjectHandle, t: AttributeType) -> Res<Option<Attribute>> {
    Ok(s.get_attributes(h, &[t]).map_err(rv("C_GetAttributeValue"))?.into_iter().next())
}

/// The kind of a key object, `None` for a kind `tessera-sign` does not use.
fn key_alg(s: &Session, h: ObjectHandle) -> Res<Option<KeyAlg>> {
    let Some(Attribute::KeyType(kt)) = get(s, h, AttributeType::KeyType)? else { return Ok(None) };
    let set = || -> Res<Option<u64>> {
        Ok(match get(s, h, AttributeType::ParameterSet)? {
            Some(Attribute::ParameterSet(p)) => Some(**p),
            _ => None,
        })
    };
    Ok(if kt == KeyType::ML_DSA {
        set()?.and_then(MlDsa::from_ckp).map(KeyAlg::MlDsa)
    } else if kt == KeyType::SLH_DSA {
        set()?.and_then(SlhDsa::from_ckp).map(KeyAlg::SlhDsa)
    } else if kt == KeyType::EC {
        match get(s, h, AttributeType::EcParams)? {
            Some(Attribute::EcParams(p)) if p == P256_PARAMS_DER => Some(KeyAlg::EcdsaP256),
            _ => None,
        }
    } else {
        None
    })
}

fn find(s: &Session, class: ObjectClass, label: Option<&str>) -> Res<Vec<Key>> {
    let mut t = vec![Attribute::Class(class)];
    if class == ObjectClass::PRIVATE_KEY {
        t.push(Attribute::Sign(true));
    }
    if let Some(l) = label {
        t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    let mut keys = Vec::new();
    for h in s.find_objects(&t).map_err(rv("C_FindObjects"))? {
        let label = match get(s, h, AttributeType::Label)? {
            Some(Attribute::Label(l)) => String::from_utf8_lossy(&l).into_owned(),
            _ => String::new(),
        };
        keys.push(Key { handle: h, alg: key_alg(s, h)?, label });
    }
    Ok(keys)
}

/// The signing key named `label` (with no name: the token's only signing key of a known kind),
/// of the kind `want` if given.
pub fn private_key(s: &Session, label: Option<&str>, want: Option<KeyAlg>) -> Res<Key> {
    let mut keys: Vec<Key> = find(s, ObjectClass::PRIVATE_KEY, label)?
        .into_iter()
        .filter(|k| k.alg.is_some() && want.is_none_or(|w| k.alg == Some(w)))
        .collect();
    let what = match (label, want) {
        (Some(l), Some(w)) => format!("{} signing key {l:?}", w.name()),
        (Some(l), None) => format!("signing key {l:?} (ML-DSA, SLH-DSA or ECDSA P-256)"),
        (None, Some(w)) => format!("{} signing key", w.name()),
        (None, None) => "ML-DSA, SLH-DSA or ECDSA P-256 signing key".into(),
    };
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => Err(format!("the token has no {what} (is the PIN right, the name right?)")),
        n => Err(format!(
            "the token has {n} keys that fit ({}): name one with --key{}",
            keys.iter()
                .map(|k| format!("{:?} {}", k.label, k.alg.map(|a| a.name()).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
            if label.is_some() { " (and --hybrid for an ML-DSA-65 and an ECDSA key of one name)" } else { "" }
        )),
    }
}

fn mechanism_check(p: &Pkcs11, slot: Slot, m: MechanismType, alg: &str) -> Res<()> {
    let list = p.get_mechanism_list(slot).map_err(rv("C_GetMechanismList"))?;
    if list.contains(&m) {
        Ok(())
    } else {
        Err(format!("the token does not offer {m} (needed for {alg})"))
    }
}

/// Generates a key pair on the token: the private key sensitive, not extractable, for signing;
/// the public key public, for verifying; both with the label and a random `CKA_ID`.
pub fn keygen(p: &Pkcs11, slot: Slot, s: &Session, alg: KeyAlg, label: &str) -> Res<()> {
    if find(s, ObjectClass::PRIVATE_KEY, Some(label))?.iter().any(|k| k.alg == Some(alg)) {
        return Err(format!("the token already has a {} key {label:?}", alg.name()));
    }
    let mut id = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| "no random bytes for CKA_ID".to_string())?;
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
    ];
    // CKA_PARAMETER_SET of the public template: CKP_ML_DSA_* / CKP_SLH_DSA_*.
    let set = |v: u64| -> Res<Attribute> {
        let p = ParameterSetType::try_from(cryptoki::types::Ulong::from(v)).map_err(|e| e.to_string())?;
        Ok(Attribute::ParameterSet(p))
    };
    let mech = match alg {
        KeyAlg::MlDsa(ps) => {
            public.push(set(ps.ckp())?);
            Mechanism::MlDsaKeyPairGen
        }
        KeyAlg::SlhDsa(ps) => {
            public.push(set(ps.ckp())?);
            Mechanism::SlhDsaKeyPairGen
        }
        KeyAlg::EcdsaP256 => {
            public.push(Attribute::EcParams(P256_PARAMS_DER.to_vec()));
            Mechanism::EccKeyPairGen
        }
        KeyAlg::Composite => return Err("a composite key is two keys: generate each".into()),
    };
    mechanism_check(p, slot, mech.mechanism_type(), &alg.name())?;
    s.generate_key_pair(&mech, &public, &private).map_err(rv("C_GenerateKeyPair"))?;
    Ok(())
}

/// The raw public key of the public key object named `label` of kind `want` (or the only one of
/// that name). Built from `CKA_VALUE` + `CKA_PARAMETER_SET` (`CKA_EC_POINT` + `CKA_EC_PARAMS`),
/// and checked against the token's `CKA_PUBLIC_KEY_INFO` where it gives one.
pub fn public_key(s: &Session, label: &str, want: Option<KeyAlg>) -> Res<PublicKey> {
    find_public_key(s, label, want)?
        .ok_or_else(|| format!("the token has no public key {label:?} of a kind tessera-sign uses"))
}

/// [`public_key`], `None` when the token has no public key of that name and kind.
pub fn find_public_key(s: &Session, label: &str, want: Option<KeyAlg>) -> Res<Option<PublicKey>> {
    let mut keys: Vec<Key> = find(s, ObjectClass::PUBLIC_KEY, Some(label))?
        .into_iter()
        .filter(|k| k.alg.is_some() && want.is_none_or(|w| k.alg == Some(w)))
        .collect();
    let key = match keys.len() {
        1 => keys.remove(0),
        0 => return Ok(None),
        n => return Err(format!("the token has {n} public keys {label:?}: use --hybrid, or name one key")),
    };
    let alg = key.alg.expect("filtered");
    let raw = match alg {
        KeyAlg::EcdsaP256 => match get(s, key.handle, AttributeType::EcPoint)? {
            Some(Attribute::EcPoint(p)) => ec_point(&p)?,
            _ => return Err(format!("the public key {label:?} has no CKA_EC_POINT")),
        },
        _ => match get(s, key.handle, AttributeType::Value)? {
            Some(Attribute::Value(v)) => v,
            _ => return Err(format!("the public key {label:?} has no CKA_VALUE")),
        },
    };
    let pk = PublicKey { alg, raw };
    // Check the built SPKI has the length the kind has, as a file would be checked.
    let built = PublicKey::parse(&pk.to_der()?)?;
    if let Some(Attribute::PublicKeyInfo(info)) = get(s, key.handle, AttributeType::PublicKeyInfo)? {
        if !info.is_empty() && info != built.to_der()? {
            return Err(format!(
                "the token's CKA_PUBLIC_KEY_INFO of {label:?} differs from the SubjectPublicKeyInfo of its CKA_VALUE and parameters"
            ));
        }
    }
    Ok(Some(built))
}

/// `CKA_EC_POINT`: a DER OCTET STRING around the point (PKCS#11), or the bare point.
fn ec_point(v: &[u8]) -> Res<Vec<u8>> {
    use der::Decode;
    let p = match der::asn1::OctetString::from_der(v) {
        Ok(o) => o.as_bytes().to_vec(),
        Err(_) => v.to_vec(),
    };
    if p.len() != P256_POINT_LEN || p[0] != 0x04 {
        return Err("CKA_EC_POINT is not an uncompressed P-256 point".into());
    }
    Ok(p)
}

/// Signature variant for ML-DSA and SLH-DSA keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// ML-DSA: pure, any size (streamed above `PURE_MAX`). SLH-DSA: pure up to `PURE_MAX`
    /// bytes, pre-hashed and streamed above.
    Auto,
    Pure,
    PreHash,
}

/// The largest file signed in one part (`C_Sign`, the file read whole into memory), which every
/// token with the mechanism takes. Pure ML-DSA streams larger files through `C_SignUpdate` (μ
/// computed as the parts arrive, FIPS 204 §3.6.4: Tessera holds no more than one part); pure
/// SLH-DSA cannot stream (FIPS 205 reads the message twice), so `Variant::Auto` pre-hashes
/// SLH-DSA above this size.
pub const PURE_MAX: u64 = 8 << 20;

fn sign_ctx(ctx: &[u8]) -> SignAdditionalContext<'_> {
    // No parameter for the default (hedged, empty context), as the specification allows.
    SignAdditionalContext::new(HedgeType::Preferred, if ctx.is_empty() { None } else { Some(ctx) })
}

/// What a token's error means for the user: a refused parameter with a context is most likely
/// a policy that takes none (Tessera's approved mode signs ML-DSA only without one).
fn sign_error<'a>(ctx: &'a [u8], what: &'a str) -> impl Fn(&str, cryptoki::error::Error) -> String + 'a {
    move |call, e| {
        let refused = matches!(e, cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::MechanismParamInvalid, _));
        if refused && !ctx.is_empty() {
            format!(
                "{call}: {e}\nthe token refuses {what} with a context (its policy may allow none: Tessera's approved \
                 mode signs ML-DSA only without one); sign without --context"
            )
        } else {
            format!("{call}: {e}")
        }
    }
}

/// `C_SignInit`, a `C_SignUpdate` per part of the file, `C_SignFinal`.
fn sign_streamed(
    s: &Session,
    m: &Mechanism,
    key: ObjectHandle,
    path: &Path,
    err: &dyn Fn(&str, cryptoki::error::Error) -> String,
) -> Res<Vec<u8>> {
    s.sign_init(m, key).map_err(|e| err("C_SignInit", e))?;
    let r = for_each_part(path, "signing", |p| s.sign_update(p).map_err(|e| err("C_SignUpdate", e)));
    if let Err(e) = r {
        // Ends the operation (a C_SignFinal that fails, or succeeds for nothing).
        let _ = s.sign_final();
        return Err(e);
    }
    s.sign_final().map_err(|e| err("C_SignFinal", e))
}

/// The mechanism of a signature algorithm (not the composite).
fn mechanism(alg: SigAlg, ctx: &[u8]) -> Mechanism<'_> {
    let c = sign_ctx(ctx);
    match alg {
        SigAlg::MlDsa(_) => Mechanism::MlDsa(c),
        SigAlg::HashMlDsa(_) => Mechanism::HashMlDsaSha512(c),
        SigAlg::SlhDsa(_) => Mechanism::SlhDsa(c),
        SigAlg::HashSlhDsa(ps) => match ps.pre_hash() {
            PreHash::Sha256 => Mechanism::HashSlhDsaSha256(c),
            PreHash::Sha512 => Mechanism::HashSlhDsaSha512(c),
            PreHash::Shake128 => Mechanism::HashSlhDsaShake128(c),
            PreHash::Shake256 => Mechanism::HashSlhDsaShake256(c),
        },
        SigAlg::EcdsaSha256 | SigAlg::Composite => Mechanism::EcdsaSha256,
    }
}

/// Signs the file at `path` with one key; returns the algorithm used and the signature.
pub fn sign_file(
    p: &Pkcs11,
    slot: Slot,
    s: &Session,
    key: &Key,
    ctx: &[u8],
    variant: Variant,
    path: &Path,
) -> Res<(SigAlg, Vec<u8>)> {
    let alg = key.alg.ok_or("a key of an unknown kind")?;
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
    let (pure, streamed) = match alg {
        KeyAlg::MlDsa(ps) => (SigAlg::MlDsa(ps), SigAlg::HashMlDsa(ps)),
        KeyAlg::SlhDsa(ps) => (SigAlg::SlhDsa(ps), SigAlg::HashSlhDsa(ps)),
        KeyAlg::EcdsaP256 => {
            if !ctx.is_empty() {
                return Err("ECDSA takes no context: drop --context, or sign with --hybrid".into());
            }
            if variant == Variant::Pure {
                return Err("ECDSA always hashes (SHA-256): --pure applies to ML-DSA and SLH-DSA".into());
            }
            (SigAlg::EcdsaSha256, SigAlg::EcdsaSha256)
        }
        KeyAlg::Composite => return Err("a composite signature is made with --hybrid".into()),
    };
    let offered = p.get_mechanism_list(slot).map_err(rv("C_GetMechanismList"))?;
    let has = |a: SigAlg| offered.contains(&mechanism(a, ctx).mechanism_type());
    let sig_alg = match variant {
        Variant::Pure => pure,
        Variant::PreHash => streamed,
        Variant::Auto if size <= PURE_MAX || matches!(pure, SigAlg::MlDsa(_)) => pure,
        // A token without the pre-hashed SLH-DSA mechanism still signs a large file, pure, read
        // whole.
        Variant::Auto if !has(streamed) && has(pure) => {
            eprintln!(
                "NOTE: the token does not offer {}: the whole file ({} MiB) is read into memory and signed pure",
                mechanism(streamed, ctx).mechanism_type(),
                size >> 20
            );
            pure
        }
        Variant::Auto => streamed,
    };
    let mech = mechanism(sig_alg, ctx);
    mechanism_check(p, slot, mech.mechanism_type(), &sig_alg.describe())?;
    let what = sig_alg.describe();
    let err = sign_error(ctx, &what);
    let sig = match sig_alg {
        // A large file streams through pure ML-DSA (C_SignUpdate, each part hashed into μ).
        SigAlg::MlDsa(_) if size > PURE_MAX => sign_streamed(s, &mech, key.handle, path, &err)?,
        // Otherwise the whole file in one C_Sign (pure SLH-DSA is one-part only).
        SigAlg::MlDsa(_) | SigAlg::SlhDsa(_) => {
            s.sign(&mech, key.handle, &read_all(path)?).map_err(|e| err("C_Sign", e))?
        }
        SigAlg::EcdsaSha256 => ecdsa_raw_to_der(&sign_streamed(s, &mech, key.handle, path, &err)?)?,
        _ => sign_streamed(s, &mech, key.handle, path, &err)?,
    };
    Ok((sig_alg, sig))
}

/// The composite signature (ML-DSA-65 and ECDSA P-256 over the draft's M', the file hashed
/// with SHA-512 here): `mldsaSig || ECDSA-Sig-Value`.
pub fn sign_composite(
    p: &Pkcs11,
    slot: Slot,
    s: &Session,
    ml: &Key,
    ec: &Key,
    ctx: &[u8],
    path: &Path,
) -> Res<Vec<u8>> {
    mechanism_check(p, slot, MechanismType::ML_DSA, "the composite signature")?;
    mechanism_check(p, slot, MechanismType::ECDSA_SHA256, "the composite signature")?;
    let ph = hash_file(path, PreHash::Sha512, "hashing")?;
    let mp = composite_message(ctx, &ph.bytes);
    let ml_sig = s
        .sign(
            &Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, Some(COMPOSITE_LABEL))),
            ml.handle,
            &mp,
        )
        .map_err(|e| {
            let refused =
                matches!(e, cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::MechanismParamInvalid, _));
            let why = if refused {
                "\nthe composite passes its label to ML-DSA-65 as the context, and the token refuses contexts \
                 (its policy may allow none: Tessera's approved mode signs ML-DSA only without one)"
            } else {
                ""
            };
            format!("C_Sign (ML-DSA-65): {e}{why}")
        })?;
    if ml_sig.len() != MLDSA65_SIG_LEN {
        return Err(format!("the token returned an ML-DSA-65 signature of {} bytes", ml_sig.len()));
    }
    let ec_sig = s.sign(&Mechanism::EcdsaSha256, ec.handle, &mp).map_err(rv("C_Sign (ECDSA P-256)"))?;
    let mut out = ml_sig;
    out.extend_from_slice(&ecdsa_raw_to_der(&ec_sig)?);
    Ok(out)
}
