//! Reading a token through another PKCS#11 module (`tessera-migrate via-pkcs11`): what that module
//! lets out — public keys, certificates, data objects with their attributes, and extractable keys
//! wrapped with AES key wrap with padding (RFC 5649) under a one-time key — as attribute maps the
//! migration converts like SoftHSMv2's ([`super::convert`]). Keys the module will not let out
//! (not extractable, or extractable only under a trusted key) are listed with their label and ID:
//! they must be issued again.
//!
//! The one-time key is random, made here, given to the source module as a session object that only
//! wraps, and destroyed after use; the wrapped keys are unwrapped here, in this process (their
//! material is wiped when dropped), never by another token.

use super::softhsm2::Val;
use super::Unsupported;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroizing;

/// The source token as read.
pub struct Source {
    pub label: String,
    pub serial: String,
    /// (where, attributes in clear) of every object that moves.
    pub objects: Vec<(String, BTreeMap<CK_ATTRIBUTE_TYPE, Val>)>,
    /// Keys that cannot move.
    pub stuck: Vec<Unsupported>,
}

/// Which token, and its PINs.
pub struct From<'a> {
    pub slot: Option<u64>,
    pub token: Option<&'a str>,
    pub pin: &'a [u8],
    /// Checked with an SO login before the user's, when given.
    pub so_pin: Option<&'a [u8]>,
}

fn pin(p: &[u8]) -> AuthPin {
    AuthPin::new(String::from_utf8_lossy(p).into_owned().into())
}

/// The attributes asked of every object (those that do not apply are simply not answered).
/// Key material is not among them: it comes wrapped.
const ASKED: &[AttributeType] = &[
    AttributeType::Class,
    AttributeType::KeyType,
    AttributeType::CertificateType,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Modifiable,
    AttributeType::Copyable,
    AttributeType::Destroyable,
    AttributeType::Label,
    AttributeType::UniqueId,
    AttributeType::Id,
    AttributeType::Application,
    AttributeType::ObjectId,
    AttributeType::Subject,
    AttributeType::Issuer,
    AttributeType::SerialNumber,
    AttributeType::Url,
    AttributeType::HashOfSubjectPublicKey,
    AttributeType::HashOfIssuerPublicKey,
    AttributeType::StartDate,
    AttributeType::EndDate,
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::AlwaysSensitive,
    AttributeType::NeverExtractable,
    AttributeType::Local,
    AttributeType::KeyGenMechanism,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::SignRecover,
    AttributeType::VerifyRecover,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::Trusted,
    AttributeType::WrapWithTrusted,
    AttributeType::AlwaysAuthenticate,
    AttributeType::AllowedMechanisms,
    AttributeType::Modulus,
    AttributeType::ModulusBits,
    AttributeType::PublicExponent,
    AttributeType::EcParams,
];

fn attributes(s: &Session, h: ObjectHandle, class: CK_OBJECT_CLASS) -> BTreeMap<CK_ATTRIBUTE_TYPE, Val> {
    let mut out = BTreeMap::new();
    let mut asked: Vec<AttributeType> = ASKED.to_vec();
    // The public content of public keys, certificates and data objects.
    if matches!(class, CKO_PUBLIC_KEY) {
        asked.push(AttributeType::EcPoint);
    }
    if matches!(class, CKO_CERTIFICATE | CKO_DATA) {
        asked.push(AttributeType::Value);
    }
    for t in asked {
        // One at a time: a module may refuse a whole list for one attribute it does not know.
        if let Ok(v) = s.get_attributes(h, &[t]) {
            for a in v {
                if let Some((t, v)) = super::val_of(&a) {
                    out.insert(t, v);
                }
            }
        }
    }
    out
}

fn text(a: &BTreeMap<CK_ATTRIBUTE_TYPE, Val>, t: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    match a.get(&t) {
        Some(Val::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// Reads the token: logs in (the SO first, only to check that PIN, when given), then every object.
pub fn read(module: &Path, from: &From<'_>) -> Result<Source, String> {
    let p = Pkcs11::new(module).map_err(|e| format!("loading {}: {e}", module.display()))?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| format!("C_Initialize of {}: {e}", module.display()))?;
    let r = read_in(&p, from);
    let _ = p.finalize();
    r
}

fn read_in(p: &Pkcs11, from: &From<'_>) -> Result<Source, String> {
    let slot = p
        .get_slots_with_initialized_token()
        .map_err(|e| format!("C_GetSlotList: {e}"))?
        .into_iter()
        .find(|s| match (from.slot, from.token) {
            (Some(id), _) => s.id() == id,
            (None, Some(label)) => p.get_token_info(*s).is_ok_and(|t| t.label() == label),
            (None, None) => false,
        })
        .ok_or("no such token in the source module")?;
    let info = p.get_token_info(slot).map_err(|e| format!("C_GetTokenInfo: {e}"))?;
    let s = p.open_rw_session(slot).map_err(|e| format!("C_OpenSession: {e}"))?;
    if let Some(so) = from.so_pin {
        s.login(UserType::So, Some(&pin(so))).map_err(|e| format!("the SO PIN: {e}"))?;
        s.logout().map_err(|e| format!("C_Logout: {e}"))?;
    }
    s.login(UserType::User, Some(&pin(from.pin))).map_err(|e| format!("the user PIN: {e}"))?;
    let handles = s.find_objects(&[]).map_err(|e| format!("C_FindObjects: {e}"))?;
    // The one-time key: random, a session object of the source that only wraps.
    let otk = crate::store::seal::random_key().map_err(|_| "no random key".to_string())?;
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(cryptoki::object::KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Value(otk.to_vec()),
    ];
    let mut wrapping = None;
    let mut objects = Vec::with_capacity(handles.len());
    let mut stuck = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let class = match s.get_attributes(h, &[AttributeType::Class]).ok().and_then(|v| v.into_iter().next()) {
            Some(Attribute::Class(c)) => CK_OBJECT_CLASS::from(c),
            _ => continue,
        };
        let mut a = attributes(&s, h, class);
        let source = format!("object {}", i + 1);
        if matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY) {
            let flag = |t| matches!(a.get(&t), Some(Val::Bool(true)));
            let why = if !flag(CKA_EXTRACTABLE) {
                Some("not extractable from the source module: it must be issued again")
            } else if flag(CKA_WRAP_WITH_TRUSTED) {
                Some("extractable only under a trusted key of the source module: it must be issued again")
            } else {
                None
            };
            if let Some(why) = why {
                stuck.push(Unsupported {
                    source,
                    class: super::class_name(class),
                    label: String::from_utf8_lossy(&text(&a, CKA_LABEL)).into_owned(),
                    id: crate::object::template::hex(&text(&a, CKA_ID)),
                    reason: why.into(),
                });
                continue;
            }
            let wk = match wrapping {
                Some(k) => k,
                None => {
                    let k = s.create_object(&template).map_err(|e| format!("the one-time wrapping key: {e}"))?;
                    wrapping = Some(k);
                    k
                }
            };
            let wrapped = s
                .wrap_key(&Mechanism::AesKeyWrapPad, wk, h)
                .map_err(|e| format!("{source}: the source module will not wrap it with AES-KWP: {e}"))?;
            let key = crate::crypto::aes::AesKey::new(&otk[..], false).ok_or("AES key")?;
            let plain = Zeroizing::new(
                key.unwrap_padded(&wrapped).ok_or(format!("{source}: the wrapped key does not unwrap"))?,
            );
            if class == CKO_SECRET_KEY {
                a.insert(CKA_VALUE, Val::Bytes(Zeroizing::new(plain.to_vec())));
            } else {
                let kp = crate::import::read_pkcs8(der_only(&plain), None).map_err(|e| format!("{source}: {e}"))?;
                // The material; what the source showed of the key (its curve's encoding among it)
                // stays as it showed it.
                for (t, v) in kp.private {
                    a.entry(t).or_insert_with(|| Val::Bytes(Zeroizing::new(v.to_vec())));
                }
            }
        }
        objects.push((source, a));
    }
    if let Some(k) = wrapping {
        let _ = s.destroy_object(k);
    }
    Ok(Source { label: info.label().to_string(), serial: info.serial_number().to_string(), objects, stuck })
}

/// A wrapped PKCS#8 without the padding some modules add to reach the 8-byte blocks of the key
/// wrap (SoftHSMv2 pads the DER before wrapping with `CKM_AES_KEY_WRAP_PAD`): the DER SEQUENCE
/// as long as its header says, when fewer than 8 bytes follow it.
fn der_only(b: &[u8]) -> &[u8] {
    let len = match b {
        [0x30, n, ..] if *n < 0x80 => Some(2 + *n as usize),
        [0x30, 0x81, n, ..] => Some(3 + *n as usize),
        [0x30, 0x82, h, l, ..] => Some(4 + ((*h as usize) << 8 | *l as usize)),
        [0x30, 0x83, a, h, l, ..] => Some(5 + ((*a as usize) << 16 | (*h as usize) << 8 | *l as usize)),
        _ => None,
    };
    match len {
        Some(n) if n <= b.len() && b.len() - n < 8 => &b[..n],
        _ => b,
    }
}
