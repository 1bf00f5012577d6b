//! Object management entry points (spec §5.8).

use super::*;
use crate::services::objects::AttrAnswer;

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_CreateObject", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phObject)?;
        if pTemplate.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let t = crate::object::WipedTemplate(read_template(pTemplate, ulCount)?);
        deliver_handle(dest, m.create_object(hSession, &t)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phNewObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_CopyObject", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out_ptr(phNewObject)?;
        let t = read_template(pTemplate, ulCount)?;
        deliver_handle(dest, m.copy_object(hSession, hObject, &t)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(hSession: CK_SESSION_HANDLE, hObject: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DestroyObject", || module()?.destroy_object(hSession, hObject))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    guard("C_GetObjectSize", || {
        let m = module()?;
        m.session(hSession)?;
        let dest = out(pulSize)?;
        *dest = m.object_size(hSession, hObject)? as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard("C_GetAttributeValue", || {
        let m = module()?;
        m.session(hSession)?;
        // As many attributes as a template may hold (`read_template`); more is no real request.
        if ulCount > MAX_TEMPLATE {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        // The caller's array is read into a copy and each entry written back through a pointer:
        // a value buffer may share bytes with the array (or a nested array with its parent), and
        // no reference to caller memory is held while it is written.
        let list: Vec<CK_ATTRIBUTE> = slice_mut(pTemplate, ulCount)?.to_vec();
        let types: Vec<_> = list.iter().map(|a| a.type_).collect();
        let answers = m.get_attributes(hSession, hObject, &types)?;
        // Every attribute is processed; the result names one of the failures that occurred.
        let mut rv = None;
        for (i, (mut a, ans)) in list.into_iter().zip(answers).enumerate() {
            let a = &mut a;
            match ans {
                AttrAnswer::Value(v) => {
                    if !fill_attribute(a, &v)? {
                        rv = Some(CKR_BUFFER_TOO_SMALL);
                    }
                }
                AttrAnswer::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = Some(CKR_ATTRIBUTE_SENSITIVE);
                }
                AttrAnswer::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = Some(CKR_ATTRIBUTE_TYPE_INVALID);
                }
            }
            std::ptr::write_unaligned(pTemplate.add(i), *a);
        }
        match rv {
            None => Ok(()),
            Some(rv) => Err(err(rv)),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard("C_SetAttributeValue", || {
        let m = module()?;
        m.session(hSession)?;
        if pTemplate.is_null() {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let t = read_template(pTemplate, ulCount)?;
        m.set_attributes(hSession, hObject, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard("C_FindObjectsInit", || {
        let m = module()?;
        m.session(hSession)?;
        let t = read_template(pTemplate, ulCount)?;
        m.find_init(hSession, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    guard("C_FindObjects", || {
        let m = module()?;
        m.session(hSession)?;
        let count = out_ptr(pulObjectCount)?;
        if phObject.is_null() && ulMaxObjectCount > 0 {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        if ulMaxObjectCount > 0 && !possible(phObject, ulMaxObjectCount) {
            return Err(err(CKR_ARGUMENTS_BAD));
        }
        let found = m.find_next(hSession, ulMaxObjectCount as usize)?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), phObject, found.len());
        }
        // Through the pointer: the count may share bytes with the handles just written.
        put(count, found.len() as CK_ULONG);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_FindObjectsFinal", || module()?.find_final(hSession))
}
