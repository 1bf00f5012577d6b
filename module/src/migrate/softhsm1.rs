//! Reading a SoftHSM v1 database (`PRAGMA user_version = 100`), read-only: `Objects(objectID)` and
//! `Attributes(objectID, type, value, length)`, values in clear as PKCS#11 values (`CK_ULONG` as 8
//! native bytes, `CK_BBOOL` one byte). Each attribute's kind is the one Tessera's attribute tables
//! give its type. Written by hand: no crate reads SoftHSM v1's database.

use super::softhsm2::Val;
use crate::object::attrs::{kind_of, Kind};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroizing;

/// Every object of the database: ("object N", attributes).
pub fn read(db: &Path) -> Result<super::Objects, String> {
    use rusqlite::{Connection, OpenFlags};
    let e = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(e)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(e)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(e)?;
    if version != 100 {
        return Err(format!("{}: not a SoftHSM v1 database (schema version {version}, not 100)", db.display()));
    }
    conn.execute_batch("BEGIN").map_err(e)?;
    let mut objects: BTreeMap<i64, BTreeMap<CK_ATTRIBUTE_TYPE, Val>> = BTreeMap::new();
    {
        let mut st = conn.prepare("SELECT objectID FROM Objects ORDER BY objectID").map_err(e)?;
        for id in st.query_map([], |r| r.get::<_, i64>(0)).map_err(e)? {
            objects.insert(id.map_err(e)?, BTreeMap::new());
        }
        let mut st =
            conn.prepare("SELECT objectID, type, value, length FROM Attributes ORDER BY attributeID").map_err(e)?;
        let mut rows = st.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let id: i64 = r.get(0).map_err(e)?;
            let t = r.get::<_, i64>(1).map_err(e)? as CK_ATTRIBUTE_TYPE;
            let mut v: Vec<u8> = r.get::<_, Option<Vec<u8>>>(2).map_err(e)?.unwrap_or_default();
            let len: i64 = r.get(3).map_err(e)?;
            v.truncate(len.max(0) as usize);
            let bad = || format!("{}: object {id}: attribute 0x{t:x} has a value of {} bytes", db.display(), v.len());
            let val = match kind_of(t) {
                Kind::Bool => Val::Bool(*v.first().ok_or_else(bad)? != 0),
                Kind::Ulong => Val::Ulong(CK_ULONG::from_ne_bytes(v.as_slice().try_into().map_err(|_| bad())?)),
                Kind::Mechanisms => Val::Mechs(
                    v.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default())).collect(),
                ),
                _ => Val::Bytes(Zeroizing::new(v)),
            };
            if let Some(o) = objects.get_mut(&id) {
                o.insert(t, val);
            }
        }
    }
    conn.execute_batch("COMMIT").map_err(e)?;
    Ok(objects.into_iter().filter(|(_, a)| !a.is_empty()).map(|(id, a)| (format!("object {id}"), a)).collect())
}
