//! Key management (spec §5.16): generation, wrapping, unwrapping and derivation.

use crate::error::{err, Error, Result};
use crate::mechanisms::param::HkdfParams;
use crate::mechanisms::{registry, Param};
use crate::module::Module;
use crate::object::attrs::{
    CKA_VENDOR_FIPS_APPROVED, CKA_VENDOR_PAIR_CONTAINED, CKA_VENDOR_SHARED_SECRET, VALIDATION_FLAG_FIPS,
};
use crate::object::template::{self, Origin};
use crate::object::{bool_, ulong, AttrMap, Object, Template};
use crate::operation::Op;
use crate::policy::{policy, Condition, KeyInfo};
use crate::session::Session;
use cryptoki_sys::*;
use zeroize::Zeroizing;

/// Adds `CKA_CLASS` and `CKA_KEY_TYPE` when the template leaves them out; a template that names
/// other values than the mechanism makes is inconsistent.
fn with_class(template: &Template, class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE) -> Result<Template> {
    let map = template::collect(template)?;
    let mut t = template.clone();
    for (attr, want) in [(CKA_CLASS, class), (CKA_KEY_TYPE, key_type)] {
        match map.get(&attr) {
            None => t.push((attr, ulong(want))),
            Some(v) if *v == ulong(want) => {}
            Some(_) => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
        }
    }
    Ok(t)
}

/// Whether `obj` carries every attribute of a nested template (`CKA_WRAP_TEMPLATE`).
fn satisfies(obj: &Object, nested: Option<&[u8]>) -> Result<bool> {
    match nested {
        None => Ok(true),
        Some(v) => Ok(obj.matches_readable(&crate::object::decode_template(v)?)),
    }
}

/// The size a key generation template asks for, as the policy measures it.
fn requested(map: &AttrMap) -> KeyInfo {
    let bits = map
        .get(&CKA_MODULUS_BITS)
        .and_then(|v| crate::object::as_ulong(v))
        .map(|b| b as u32)
        .or_else(|| map.get(&CKA_VALUE_LEN).and_then(|v| crate::object::as_ulong(v)).map(|l| (l * 8) as u32));
    // The curve, of a template that names one (an object made to read it with `KeyInfo::of`).
    let curve = map.get(&CKA_EC_PARAMS).and_then(|params| {
        let probe = Object::new([(CKA_KEY_TYPE, ulong(CKK_EC)), (CKA_EC_PARAMS, params.clone())].into_iter().collect());
        KeyInfo::of(&probe).curve
    });
    KeyInfo { bits, curve }
}

/// Records on a key whether it came to be under approved conditions: the vendor attribute
/// `CKA_VENDOR_FIPS_APPROVED` and the 3.2 `CKA_OBJECT_VALIDATION_FLAGS`.
pub fn stamp(obj: &mut Object, approved: bool) {
    if matches!(obj.class(), CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
        let approved = approved && policy().is_ok_and(|p| p.key_approved(obj));
        obj.attrs.insert(CKA_VENDOR_FIPS_APPROVED, bool_(approved));
        obj.attrs.insert(CKA_OBJECT_VALIDATION_FLAGS, ulong(if approved { VALIDATION_FLAG_FIPS } else { 0 }));
    }
}

/// Why the approved mode refuses HKDF parameters over an ECDH shared secret.
const Z_EXTRACTED: &str = "the approved mode derives from an ECDH shared secret only through HKDF's extraction and \
                           expansion (SP 800-56C Rev. 2 §5), with the secret as the input, not the salt";

/// Why the approved mode refuses a template for an ECDH shared secret.
const Z_INSIDE: &str = "the approved mode keeps an ECDH shared secret (CKD_NULL) inside the module: a sensitive, \
                        non-extractable, unmodifiable generic secret that only derives";

/// Whether a key made from an ECDH shared secret Z without a KDF (`CKD_NULL`) keeps Z inside the
/// module as SP 800-56A Rev. 3 §5.8 asks: a generic (or HKDF) secret that is sensitive, not
/// extractable, not modifiable (so no later `C_SetAttributeValue` or `C_CopyObject` template gives
/// it another use), and whose one use is to derive, as the input of an approved KDF
/// (`CKM_HKDF_DERIVE`, SP 800-56C Rev. 2 two-step). Anything else lets Z, or a use of Z as a key,
/// out: refused in the approved mode, not approved in the other.
fn keeps_shared_secret_inside(obj: &Object) -> bool {
    const OTHER_USES: [CK_ATTRIBUTE_TYPE; 8] =
        [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_VERIFY_RECOVER];
    obj.class() == CKO_SECRET_KEY
        && matches!(obj.ulong(CKA_KEY_TYPE), Some(CKK_GENERIC_SECRET | CKK_HKDF))
        && obj.flag(CKA_SENSITIVE)
        && !obj.flag(CKA_EXTRACTABLE)
        && !obj.flag(CKA_MODIFIABLE)
        && !OTHER_USES.iter().any(|a| obj.flag(*a))
}

/// The conditional pairwise-consistency test on a new key pair (FIPS 140-3 IG 10.3.A), each key
/// type's own (`keys::KeyType::pairwise`): a pair that can sign signs and verifies, an RSA pair
/// also encrypts and decrypts with OAEP, and a key-agreement pair (X25519, or a prime-curve pair
/// whose private key may not sign) must have the public key its private key implies
/// (SP 800-56A rev. 3, §5.6.2.1.4).
fn pairwise_consistency(public: &Object, private: &Object) -> std::result::Result<(), String> {
    let kt = public.ulong(CKA_KEY_TYPE).unwrap_or(CK_UNAVAILABLE_INFORMATION);
    let healthy = crate::fips::kat::healthy("pct");
    match crate::keys::by_type(kt) {
        Some(k) => (k.pairwise)(public, private, healthy),
        None => Ok(()),
    }
}

/// Takes off the zero padding a wrap with ECB, CBC or `CKM_AES_KEY_WRAP` put on a key whose
/// length is not a multiple of the block: of a secret key, down to the length of its key type
/// (DES) or the template's `CKA_VALUE_LEN` (PKCS#11: the unwrapped value is truncated to them);
/// of a private key, down to the length its PKCS#8 DER encoding states. Only zero bytes, fewer
/// than a 16-byte block, are ever taken off; a value that does not fit is left whole for the
/// template checks to refuse.
fn without_zero_padding(bytes: &mut Vec<u8>, class: CK_OBJECT_CLASS, template: &AttrMap) {
    let ulong = |t| template.get(&t).and_then(|v| crate::object::as_ulong(v));
    let want = match class {
        CKO_SECRET_KEY => {
            ulong(CKA_KEY_TYPE).and_then(crate::keys::des::key_len).or_else(|| ulong(CKA_VALUE_LEN).map(|n| n as usize))
        }
        CKO_PRIVATE_KEY => {
            use pkcs8::der::{Decode, Header, Reader, SliceReader};
            SliceReader::new(bytes).ok().and_then(|mut r| {
                let h = Header::decode(&mut r).ok()?;
                usize::try_from((r.position() + h.length).ok()?).ok()
            })
        }
        _ => None,
    };
    if let Some(n) = want {
        let padding = bytes.len().saturating_sub(n);
        if n > 0 && (1..16).contains(&padding) && bytes[n..].iter().all(|b| *b == 0) {
            bytes.truncate(n);
        }
    }
}

/// Whether what `wk` wraps stays inside: nobody outside the token knows its value (a secret key
/// generated here that was never extractable; a public key generated here with a private key that
/// unwraps and was sensitive from the start), or the Security Officer vouches for it
/// (`CKA_TRUSTED`: a key another HSM shares, to which sensitive keys may be exported). Only such
/// keys wrap sensitive keys: a key made from a value the caller knows would hand the wrapped key
/// to the caller.
fn contains_what_it_wraps(wk: &Object) -> bool {
    match wk.class() {
        // A trusted key whose value the caller can read would hand the wrapped key over too.
        CKO_SECRET_KEY => template::guarding(wk) && !wk.material_readable(),
        CKO_PUBLIC_KEY => wk.flag(CKA_TRUSTED) || (wk.flag(CKA_LOCAL) && wk.flag(CKA_VENDOR_PAIR_CONTAINED)),
        _ => false,
    }
}

/// `CKR_MECHANISM_INVALID` for a wrapping mechanism that does not authenticate what it wraps,
/// outside the legacy rules (see `Mechanism::wraps_authenticated`).
fn authenticated_wrapping(m: &dyn crate::mechanisms::Mechanism, legacy: bool, op: Op) -> Result<()> {
    let authenticated = if op == Op::Unwrap { m.unwraps_authenticated() } else { m.wraps_authenticated() };
    if legacy || authenticated {
        Ok(())
    } else {
        Err(err(CKR_MECHANISM_INVALID))
    }
}

/// A template with a key's nested template (`CKA_UNWRAP_TEMPLATE`, `CKA_DERIVE_TEMPLATE`) added:
/// the key's attributes are imposed on what it makes, and a template that asks otherwise is
/// inconsistent (found when the result is folded). Borrowed when the key has none, as most keys.
fn with_nested<'a>(
    template: &'a Template,
    key: &Object,
    nested: CK_ATTRIBUTE_TYPE,
) -> Result<std::borrow::Cow<'a, Template>> {
    match key.get(nested).filter(|v| !v.is_empty()) {
        None => Ok(std::borrow::Cow::Borrowed(template)),
        Some(v) => {
            let mut t = template.clone();
            t.extend(crate::object::decode_template(v)?);
            Ok(std::borrow::Cow::Owned(t))
        }
    }
}

impl Module {
    /// `C_GenerateKey`.
    pub fn generate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let map: AttrMap = template::collect(template)?;
        let d = self.decide(Op::Generate, mech, m, None, &requested(&map), param)?;
        let g = m.generate_key(param, &map)?;
        let t = with_class(template, CKO_SECRET_KEY, g.key_type)?;
        let mut obj = template::build(&t, g.material, Origin::Generated(mech), self.actor(&s))?;
        stamp(&mut obj, d.verdict.approved());
        self.store_object(&s, obj)
    }

    /// `C_GenerateKeyPair`: (public, private).
    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let pub_map = template::collect(public)?;
        // FIPS 186-5 §5.1: 2^16 < e (65537 when the template leaves it out).
        // Only a usable exponent at or below 2^16 fails the condition; a malformed one is left
        // to the mechanism, which refuses it as an invalid attribute value.
        let exponent_ok = pub_map.get(&CKA_PUBLIC_EXPONENT).is_none_or(|e| {
            let lead = e.iter().position(|b| *b != 0).unwrap_or(e.len());
            let e = &e[lead..];
            let small = e.len() <= 3 && e.iter().fold(0u32, |a, b| (a << 8) | *b as u32) <= 65536;
            let usable = e.last().is_some_and(|b| b % 2 == 1) && !matches!(e, [1]);
            !(small && usable)
        });
        let meets = |c: Condition| (c == Condition::RsaExponentFips186 && exponent_ok) || m.meets(c, param);
        let d = self.decide_with(Op::GeneratePair, mech, None, &requested(&pub_map), &meets)?;
        let g = m.generate_key_pair(param, &pub_map, &template::collect(private)?)?;
        let actor = self.actor(&s);
        let pub_t = with_class(public, CKO_PUBLIC_KEY, g.key_type)?;
        let priv_t = with_class(private, CKO_PRIVATE_KEY, g.key_type)?;
        let mut pub_obj = template::build(&pub_t, g.public, Origin::Generated(mech), actor)?;
        let mut priv_obj = template::build(&priv_t, g.private, Origin::Generated(mech), actor)?;
        // The key as the generation has it: the pairwise test below, and the first use, take it
        // rather than parse the new objects' material again.
        for (obj, form) in [(&pub_obj, g.forms.0), (&priv_obj, g.forms.1)] {
            if let Some(f) = form {
                obj.keep(f);
            }
        }
        if priv_obj.get(CKA_PUBLIC_KEY_INFO).is_some_and(|v| v.is_empty()) {
            if let Some(info) = pub_obj.get(CKA_PUBLIC_KEY_INFO).filter(|v| !v.is_empty()) {
                priv_obj.attrs.insert(CKA_PUBLIC_KEY_INFO, info.to_vec().into());
            }
        }
        // The public key keeps what it wraps when its private key guards (it unwraps and was
        // sensitive from the start; its kind is fixed, so it never decrypts nor signs).
        let contained = template::guarding(&priv_obj) && !self.legacy_wrapping();
        pub_obj.attrs.insert(CKA_VENDOR_PAIR_CONTAINED, bool_(contained));
        stamp(&mut pub_obj, d.verdict.approved());
        stamp(&mut priv_obj, d.verdict.approved());
        if let Err(why) = pairwise_consistency(&pub_obj, &priv_obj) {
            self.enter_error_state(format!("pairwise-consistency test failed: {why}"));
            return Err(err(CKR_GENERAL_ERROR));
        }
        let ph = self.store_object(&s, pub_obj)?;
        match self.store_object(&s, priv_obj) {
            Ok(vh) => Ok((ph, vh)),
            Err(e) => {
                let _ = self.destroy_object(h, ph);
                Err(e)
            }
        }
    }

    /// `C_WrapKey`: the wrapped bytes (computed again for each call; the length is stable).
    pub fn wrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let legacy = self.legacy_wrapping();
        authenticated_wrapping(m, legacy, Op::Wrap)?;
        let wk = self.usable_key(&s, wrapping, mech, m, Op::Wrap).map_err(|e| match e.rv() {
            CKR_KEY_HANDLE_INVALID => err(CKR_WRAPPING_KEY_HANDLE_INVALID),
            CKR_KEY_TYPE_INCONSISTENT => err(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
            _ => e,
        })?;
        self.decide(Op::Wrap, mech, m, Some(wrapping), &KeyInfo::of(&wk), param)?;
        let (_, k) = self.resolve(&s, key).map_err(|_| err(CKR_KEY_HANDLE_INVALID))?;
        if !k.flag(CKA_EXTRACTABLE) {
            return Err(err(CKR_KEY_UNEXTRACTABLE));
        }
        if k.flag(CKA_WRAP_WITH_TRUSTED) && !wk.flag(CKA_TRUSTED) {
            return Err(err(CKR_KEY_NOT_WRAPPABLE));
        }
        if !satisfies(&k, wk.get(CKA_WRAP_TEMPLATE))? {
            return Err(err(CKR_KEY_NOT_WRAPPABLE));
        }
        if !legacy && k.flag(CKA_SENSITIVE) && !contains_what_it_wraps(&wk) {
            return Err(err(CKR_KEY_NOT_WRAPPABLE));
        }
        let bytes = match k.class() {
            CKO_SECRET_KEY => k.get(CKA_VALUE).ok_or(err(CKR_KEY_NOT_WRAPPABLE))?.to_vec(),
            CKO_PRIVATE_KEY => crate::import::encode_pkcs8(&k).map_err(|_| err(CKR_KEY_NOT_WRAPPABLE))?,
            _ => return Err(err(CKR_KEY_NOT_WRAPPABLE)),
        };
        m.wrap(param, &wk, &bytes)
    }

    /// `C_UnwrapKey`.
    pub fn unwrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let legacy = self.legacy_wrapping();
        authenticated_wrapping(m, legacy, Op::Unwrap)?;
        let uk = self.usable_key(&s, unwrapping, mech, m, Op::Unwrap).map_err(|e| match e.rv() {
            CKR_KEY_HANDLE_INVALID => err(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
            CKR_KEY_TYPE_INCONSISTENT => err(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
            _ => e,
        })?;
        let d = self.decide(Op::Unwrap, mech, m, Some(unwrapping), &KeyInfo::of(&uk), param)?;
        let mut t = with_nested(template, &uk, CKA_UNWRAP_TEMPLATE)?.into_owned();
        let mut map = template::collect(&t)?;
        // A key unwrapped by a guarding key or a private key is sensitive: what was wrapped may
        // have been, and the wrapped form does not say. Asking for a non-sensitive one would
        // turn unwrapping into decryption. (Other keys never wrapped a sensitive key.)
        if !legacy && (template::guarding(&uk) || uk.class() == CKO_PRIVATE_KEY) {
            match map.get(&CKA_SENSITIVE) {
                Some(v) if **v == [0] => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
                Some(_) => {}
                None => {
                    t.push((CKA_SENSITIVE, bool_(true)));
                    map.insert(CKA_SENSITIVE, bool_(true));
                }
            }
        }
        let class = map.get(&CKA_CLASS).and_then(|v| crate::object::as_ulong(v)).ok_or(err(CKR_TEMPLATE_INCOMPLETE))?;
        let mut bytes = m.unwrap(param, &uk, wrapped)?;
        if m.wraps_zero_padded() {
            without_zero_padding(&mut bytes, class, &map);
        }
        let material: Template = match class {
            CKO_SECRET_KEY => vec![(CKA_VALUE, bytes.into())],
            CKO_PRIVATE_KEY => {
                let kp = crate::import::read_pkcs8(&bytes, None).map_err(|_| err(CKR_WRAPPED_KEY_INVALID))?;
                if map.get(&CKA_KEY_TYPE).is_some_and(|v| *v != ulong(kp.key_type)) {
                    return Err(err(CKR_TEMPLATE_INCONSISTENT));
                }
                t.push((CKA_KEY_TYPE, ulong(kp.key_type)));
                kp.private
            }
            _ => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
        };
        let mut obj = template::build(&t, material, Origin::Imported, self.actor(&s))?;
        stamp(&mut obj, d.verdict.approved());
        self.store_object(&s, obj)
    }

    /// HKDF parameters whose salt is a key (`CKF_HKDF_SALT_KEY`) with the salt key's value put in
    /// as data (wiped with the parameter); `None` for every other parameter. The salt key must be
    /// a secret key of the session's token that it may see, of a type meant for key derivation
    /// (`CKK_GENERIC_SECRET`, `CKK_HKDF`), with `CKA_DERIVE`: its value becomes the HMAC key of
    /// HKDF-Extract, and other keys (an AES key …) must not be usable as a MAC key that way.
    fn hkdf_salt_key(&self, s: &Session, mech: CK_MECHANISM_TYPE, param: &Param) -> Result<Option<Param>> {
        if !matches!(mech, CKM_HKDF_DERIVE | CKM_HKDF_DATA) {
            return Ok(None);
        }
        // Malformed parameters are the mechanism's to refuse.
        let Param::Hkdf(p) = param else { return Ok(None) };
        if !p.extract || p.salt_type != CKF_HKDF_SALT_KEY {
            return Ok(None);
        }
        // (An ECDH shared secret as the salt key: `derive_key` has decided on it already.)
        let (_, k) = self.resolve(s, p.salt_key).map_err(|_| err(CKR_KEY_HANDLE_INVALID))?;
        if k.class() != CKO_SECRET_KEY || !matches!(k.subtype(), Some(CKK_GENERIC_SECRET | CKK_HKDF)) {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        if !k.flag(CKA_DERIVE) {
            return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        // The salt key's own restriction to some mechanisms holds for this use too.
        if !k.allows_mechanism(mech) {
            return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
        }
        let salt =
            zeroize::Zeroizing::new(crate::error::try_copy(k.get(CKA_VALUE).ok_or(err(CKR_KEY_TYPE_INCONSISTENT))?)?);
        let info = crate::error::try_copy(&p.info)?;
        Ok(Some(Param::Hkdf(HkdfParams { salt, salt_type: CKF_HKDF_SALT_DATA, info, ..*p })))
    }

    /// Whether `h` names a key whose value is an ECDH shared secret ([`CKA_VENDOR_SHARED_SECRET`]).
    fn is_shared_secret(&self, s: &Session, h: CK_OBJECT_HANDLE) -> bool {
        self.resolve(s, h).is_ok_and(|(_, k)| k.flag(CKA_VENDOR_SHARED_SECRET))
    }

    /// `C_DeriveKey`.
    pub fn derive_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        base: CK_OBJECT_HANDLE,
        template: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let bk = self.usable_key(&s, base, mech, m, Op::Derive)?;
        let mut d = self.decide(Op::Derive, mech, m, Some(base), &KeyInfo::of(&bk), param)?;
        let nested = with_nested(template, &bk, CKA_DERIVE_TEMPLATE)?;
        let template: &Template = &nested;
        let map = template::collect(template)?;
        // Data derived from a key (CKM_HKDF_DATA) is readable, and equals a key derived from the
        // same key with the same parameters. So only a key restricted to deriving data
        // (`CKA_DERIVE_TEMPLATE` with `CKA_CLASS` = `CKO_DATA`) derives data: no key derived
        // from it can exist whose value a data object shows.
        let data = map.get(&CKA_CLASS).and_then(|v| crate::object::as_ulong(v)) == Some(CKO_DATA);
        // A decapsulated secret (and what is derived from it) stays inside: the derived key is
        // sensitive and no data object shows a value computed from it (`CKA_VENDOR_DECAPSULATED`).
        let decapsulated = bk.flag(crate::object::attrs::CKA_VENDOR_DECAPSULATED) && !self.legacy_wrapping();
        if decapsulated && (data || map.get(&CKA_SENSITIVE).is_some_and(|v| **v == [0])) {
            return Err(Error::because(
                CKR_TEMPLATE_INCONSISTENT,
                "a key derived from a decapsulated shared secret stays sensitive, as the secret does",
            ));
        }
        if data && !self.legacy_wrapping() {
            let restricted = bk
                .get(CKA_DERIVE_TEMPLATE)
                .map(crate::object::decode_template)
                .transpose()?
                .is_some_and(|t| t.iter().any(|(a, v)| *a == CKA_CLASS && *v == ulong(CKO_DATA)));
            if !restricted {
                return Err(err(CKR_KEY_FUNCTION_NOT_PERMITTED));
            }
        }
        // The length asked for, or the one the key type fixes (DES).
        let given = |t| map.get(&t).and_then(|v| crate::object::as_ulong(v));
        let len = given(CKA_VALUE_LEN)
            .map(|l| l as usize)
            .or_else(|| given(CKA_KEY_TYPE).and_then(crate::keys::des::key_len));
        let approved_mode = self.cfg.mode == crate::policy::Mode::Approved;
        // A data object is what CKM_HKDF_DATA makes; an approved derivation makes keys (its
        // output readable in a data object would let a shared secret's KDF output, or its
        // pseudorandom key, out through CKM_HKDF_DERIVE and a CKA_DERIVE_TEMPLATE).
        if data && mech != CKM_HKDF_DATA && d.verdict.approved() {
            if approved_mode {
                return Err(Error::because(
                    CKR_TEMPLATE_INCONSISTENT,
                    "the approved mode makes keys, not data objects, with this mechanism",
                ));
            }
            d.verdict = crate::record::Verdict::NonApproved;
            crate::record::decided(d);
        }
        // HKDF over an ECDH shared secret is the whole two-step derivation of SP 800-56C Rev. 2
        // §5: extraction and expansion (the pseudorandom key between them is not output), and the
        // secret is not the salt; otherwise refused in the approved mode, not approved in the other.
        let z_misused = |p: &Param| match p {
            Param::Hkdf(h) => {
                (bk.flag(CKA_VENDOR_SHARED_SECRET) && !(h.extract && h.expand))
                    || (h.salt_type == CKF_HKDF_SALT_KEY && self.is_shared_secret(&s, h.salt_key))
            }
            _ => false,
        };
        if z_misused(param) && d.verdict.approved() {
            if approved_mode {
                return Err(Error::because(CKR_MECHANISM_PARAM_INVALID, Z_EXTRACTED));
            }
            d.verdict = crate::record::Verdict::NonApproved;
            crate::record::decided(d);
        }
        let salted = self.hkdf_salt_key(&s, mech, param)?;
        let value = m.derive(salted.as_ref().unwrap_or(param), &bk, len)?;
        let raw_secret = matches!(param, Param::Ecdh1 { kdf: CKD_NULL, .. });
        if data {
            // CKM_HKDF_DATA: the output is a data object holding the derived bytes (an ECDH
            // shared secret in a data object is Z output: [`keeps_shared_secret_inside`]).
            if raw_secret {
                if approved_mode {
                    return Err(Error::because(CKR_TEMPLATE_INCONSISTENT, Z_INSIDE));
                }
                d.verdict = crate::record::Verdict::NonApproved;
                crate::record::decided(d);
            }
            let t: Template = template.iter().filter(|(a, _)| *a != CKA_VALUE_LEN).cloned().collect();
            let mut obj = template::build(&t, vec![(CKA_VALUE, value.into())], Origin::Created, self.actor(&s))?;
            stamp(&mut obj, d.verdict.approved());
            return self.store_object(&s, obj);
        }
        let mut t = Template::with_capacity(template.len() + 5);
        t.extend_from_slice(template);
        if !map.contains_key(&CKA_CLASS) {
            t.push((CKA_CLASS, ulong(CKO_SECRET_KEY)));
        }
        if !map.contains_key(&CKA_KEY_TYPE) {
            t.push((CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)));
        }
        if decapsulated && !map.contains_key(&CKA_SENSITIVE) {
            t.push((CKA_SENSITIVE, bool_(true)));
        }
        if raw_secret && approved_mode {
            // What the template leaves open keeps Z inside ([`keeps_shared_secret_inside`]).
            let mut inside = vec![(CKA_SENSITIVE, true), (CKA_EXTRACTABLE, false), (CKA_MODIFIABLE, false)];
            inside.push((CKA_DERIVE, true));
            inside.extend([CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY, CKA_WRAP, CKA_UNWRAP].map(|a| (a, false)));
            for (a, v) in inside {
                if !map.contains_key(&a) {
                    t.push((a, bool_(v)));
                }
            }
        }
        let origin = Origin::Derived(bk.flag(CKA_ALWAYS_SENSITIVE), bk.flag(CKA_NEVER_EXTRACTABLE));
        let mut obj = template::build(&t, vec![(CKA_VALUE, value.into())], origin, self.actor(&s))?;
        if raw_secret && obj.class() == CKO_SECRET_KEY {
            obj.attrs.insert(CKA_VENDOR_SHARED_SECRET, bool_(true));
        }
        if decapsulated && obj.class() == CKO_SECRET_KEY {
            obj.attrs.insert(crate::object::attrs::CKA_VENDOR_DECAPSULATED, bool_(true));
        }
        if raw_secret && d.verdict.approved() && !keeps_shared_secret_inside(&obj) {
            if approved_mode {
                return Err(Error::because(CKR_TEMPLATE_INCONSISTENT, Z_INSIDE));
            }
            d.verdict = crate::record::Verdict::NonApproved;
            crate::record::decided(d);
        }
        stamp(&mut obj, d.verdict.approved());
        self.store_object(&s, obj)
    }
}

/// What `C_EncapsulateKey` gives back.
pub enum Encapsulation {
    /// A length query, or a buffer too small for the ciphertext: its length (the latter is
    /// `CKR_BUFFER_TOO_SMALL`). No key was made.
    Length(crate::services::digest::Output),
    /// The ciphertext and the new key.
    Made { ciphertext: Vec<u8>, key: CK_OBJECT_HANDLE },
}

/// Longest shared secret a key-encapsulation mechanism gives (ML-KEM's K, 32 bytes): made by the
/// mechanism (`Encapsulated::secret`, a `Zeroizing` buffer), it becomes the new key's value here.
/// SSP: KEM shared secret K
const KEM_SECRET_LEN: usize = 32;

/// The template of the secret key `C_EncapsulateKey` or `C_DecapsulateKey` makes with `key`: the
/// key's nested template (`CKA_ENCAPSULATE_TEMPLATE` or `CKA_DECAPSULATE_TEMPLATE`) imposed, a
/// secret key (`CKK_GENERIC_SECRET` unless the template names a type), and the length the key
/// takes from the front of the shared secret: the template's `CKA_VALUE_LEN` (1 to 32 bytes), the
/// key type's fixed length (DES), or the whole secret.
///
/// A key made by decapsulation is sensitive (outside the legacy rules), as a key unwrapped by a
/// private key is: the same ciphertext decapsulates to the same secret every time, so were a
/// readable key allowed, any user of the private key could read the value of every key made from
/// a ciphertext that passed by — a sensitive one that `C_EncapsulateKey` made on this token
/// included. A template asking for a non-sensitive one is `CKR_TEMPLATE_INCONSISTENT`.
fn kem_template(
    template: &Template,
    key: &Object,
    nested: CK_ATTRIBUTE_TYPE,
    decapsulating: bool,
    legacy: bool,
) -> Result<(Template, usize)> {
    let full = with_nested(template, key, nested)?;
    // Room for what is added below (class, key type, sensitivity): the template is not grown.
    let mut t = Template::with_capacity(full.len() + 3);
    t.extend_from_slice(&full);
    let map = template::collect(&t)?;
    let given = |a| map.get(&a).map(|v| crate::object::as_ulong(v).ok_or(err(CKR_ATTRIBUTE_VALUE_INVALID)));
    match given(CKA_CLASS).transpose()? {
        None => t.push((CKA_CLASS, ulong(CKO_SECRET_KEY))),
        Some(CKO_SECRET_KEY) => {}
        Some(_) => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
    }
    let key_type = given(CKA_KEY_TYPE).transpose()?;
    if key_type.is_none() {
        t.push((CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)));
    }
    let len = match given(CKA_VALUE_LEN).transpose()? {
        Some(l) if (1..=KEM_SECRET_LEN as CK_ULONG).contains(&l) => l as usize,
        Some(_) => return Err(err(CKR_ATTRIBUTE_VALUE_INVALID)),
        None => key_type.and_then(crate::keys::des::key_len).unwrap_or(KEM_SECRET_LEN),
    };
    if decapsulating && !legacy {
        match map.get(&CKA_SENSITIVE) {
            Some(v) if **v == [0] => return Err(err(CKR_TEMPLATE_INCONSISTENT)),
            Some(_) => {}
            None => t.push((CKA_SENSITIVE, bool_(true))),
        }
    }
    Ok((t, len))
}

/// The leading `len` bytes of a shared secret (`CKR_TEMPLATE_INCONSISTENT` when it is shorter),
/// for the new key's value: the whole secret is moved, not copied (the buffer, wiped when the
/// key object drops, is the key's from here on).
fn leading(mut secret: Zeroizing<Vec<u8>>, len: usize) -> Result<Vec<u8>> {
    if len > secret.len() {
        return Err(err(CKR_TEMPLATE_INCONSISTENT));
    }
    // Truncating drops no bytes unwiped: `Zeroizing` wipes the whole allocation on drop, and
    // here the buffer moves on as the key's value, which its object wipes in full.
    secret.truncate(len);
    Ok(std::mem::take(&mut *secret))
}

/// Why the approved mode refuses a key of part of a KEM's shared secret.
const K_WHOLE: &str = "the approved mode makes the whole 32-byte shared secret K the new key (SP 800-227 names K \
                       itself, or a KDF over it); derive shorter keys from it with CKM_HKDF_DERIVE";

impl Module {
    /// A key of fewer bytes than the shared secret: a use SP 800-227 does not describe (K is
    /// the key, or the input of a KDF), refused in the approved mode and not approved in the other.
    fn whole_secret(&self, d: &mut crate::record::Decided, len: usize) -> Result<()> {
        if len >= KEM_SECRET_LEN || !d.verdict.approved() {
            return Ok(());
        }
        if self.cfg.mode == crate::policy::Mode::Approved {
            return Err(Error::because(CKR_TEMPLATE_INCONSISTENT, K_WHOLE));
        }
        d.verdict = crate::record::Verdict::NonApproved;
        crate::record::decided(*d);
        Ok(())
    }
}

impl Module {
    /// `C_EncapsulateKey`: a new secret key from a fresh shared secret under the public key
    /// `public`, and the ciphertext that carries it. `cap` is the caller's buffer for the
    /// ciphertext (`None`: a length query); when it cannot take the ciphertext, only the length
    /// is answered and no key is made (nor a secret drawn).
    pub fn encapsulate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        public: CK_OBJECT_HANDLE,
        template: &Template,
        cap: Option<usize>,
    ) -> Result<Encapsulation> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let pk = self.usable_key(&s, public, mech, m, Op::Encapsulate)?;
        if pk.class() != CKO_PUBLIC_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let mut d = self.decide(Op::Encapsulate, mech, m, Some(public), &KeyInfo::of(&pk), param)?;
        let len = m.ciphertext_len(param, &pk)?;
        if let Some(o) = crate::services::length_only(len, cap) {
            return Ok(Encapsulation::Length(o));
        }
        let (t, value_len) = kem_template(template, &pk, CKA_ENCAPSULATE_TEMPLATE, false, self.legacy_wrapping())?;
        self.whole_secret(&mut d, value_len)?;
        let e = m.encapsulate(param, &pk)?;
        let value = leading(e.secret, value_len)?;
        let mut obj =
            template::build(&t, vec![(CKA_VALUE, value.into())], Origin::Derived(false, false), self.actor(&s))?;
        stamp(&mut obj, d.verdict.approved());
        let key = self.store_object(&s, obj)?;
        Ok(Encapsulation::Made { ciphertext: e.ciphertext, key })
    }

    /// `C_DecapsulateKey`: a new secret key from the shared secret `ciphertext` carries for the
    /// private key `private`.
    pub fn decapsulate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        param: &Param,
        private: CK_OBJECT_HANDLE,
        template: &Template,
        ciphertext: &[u8],
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let m = registry().get(mech)?;
        let sk = self.usable_key(&s, private, mech, m, Op::Decapsulate)?;
        if sk.class() != CKO_PRIVATE_KEY {
            return Err(err(CKR_KEY_TYPE_INCONSISTENT));
        }
        let mut d = self.decide(Op::Decapsulate, mech, m, Some(private), &KeyInfo::of(&sk), param)?;
        let (t, value_len) = kem_template(template, &sk, CKA_DECAPSULATE_TEMPLATE, true, self.legacy_wrapping())?;
        self.whole_secret(&mut d, value_len)?;
        let secret = m.decapsulate(param, &sk, ciphertext)?;
        let value = leading(secret, value_len)?;
        let mut obj =
            template::build(&t, vec![(CKA_VALUE, value.into())], Origin::Derived(false, false), self.actor(&s))?;
        obj.attrs.insert(crate::object::attrs::CKA_VENDOR_DECAPSULATED, bool_(true));
        stamp(&mut obj, d.verdict.approved());
        self.store_object(&s, obj)
    }
}
