//! PKCS#11 URIs (RFC 7512), the part `tessera-sign` uses: a token named by `token`, `serial`,
//! `manufacturer`, `model` or `slot-id`, a key by `object`, and `pin-source`, `pin-value`,
//! `module-path` in the query. Any other attribute is refused rather than ignored, so that a URI
//! never selects more than it says. Written here because RFC 7512's grammar is a few lines and
//! no well-kept crate parses it.

use std::path::PathBuf;

type Res<T> = Result<T, String>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub pin_source: Option<String>,
    pub pin_value: Option<String>,
    pub module_path: Option<PathBuf>,
}

/// RFC 3986 percent-decoding of one attribute value, as UTF-8.
fn decode(v: &str) -> Res<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad percent escape in {v:?}"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{v:?} is not UTF-8 once decoded"))
}

pub fn parse(s: &str) -> Res<Uri> {
    let rest = s.strip_prefix("pkcs11:").ok_or("a PKCS#11 URI begins with \"pkcs11:\"")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut u = Uri::default();
    let set = |slot: &mut Option<String>, name: &str, v: &str| -> Res<()> {
        if slot.replace(decode(v)?).is_some() {
            return Err(format!("the attribute {name} appears twice"));
        }
        Ok(())
    };
    for part in path.split(';').filter(|p| !p.is_empty()) {
        let (name, v) = part.split_once('=').ok_or_else(|| format!("{part:?} is not name=value"))?;
        match name {
            "token" => set(&mut u.token, name, v)?,
            "serial" => set(&mut u.serial, name, v)?,
            "manufacturer" => set(&mut u.manufacturer, name, v)?,
            "model" => set(&mut u.model, name, v)?,
            "object" => set(&mut u.object, name, v)?,
            "slot-id" => {
                let id = decode(v)?.parse().map_err(|_| format!("slot-id {v:?} is not a number"))?;
                if u.slot_id.replace(id).is_some() {
                    return Err("the attribute slot-id appears twice".into());
                }
            }
            // Keys are private keys, found by label; "type" may say so, and nothing else.
            "type" if matches!(v, "private" | "public") => {}
            _ => return Err(format!("the URI attribute {name:?} is not supported by tessera-sign")),
        }
    }
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, v) = part.split_once('=').ok_or_else(|| format!("{part:?} is not name=value"))?;
        match name {
            "pin-source" => set(&mut u.pin_source, name, v)?,
            "pin-value" => set(&mut u.pin_value, name, v)?,
            "module-path" => {
                let mut p = None;
                set(&mut p, name, v)?;
                u.module_path = p.map(PathBuf::from);
            }
            _ => return Err(format!("the URI query attribute {name:?} is not supported by tessera-sign")),
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let u = parse("pkcs11:token=My%20Token;object=signer;type=private?pin-source=file:/tmp/p").unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.object.as_deref(), Some("signer"));
        assert_eq!(u.pin_source.as_deref(), Some("file:/tmp/p"));
        assert_eq!(parse("pkcs11:slot-id=3").unwrap().slot_id, Some(3));
        assert!(parse("pkcs11:token=a;token=b").is_err());
        assert!(parse("pkcs11:library-description=x").is_err());
        assert!(parse("pkcs11:token=%4").is_err());
        assert!(parse("token=a").is_err());
        assert!(parse("pkcs11:type=cert").is_err());
    }
}
