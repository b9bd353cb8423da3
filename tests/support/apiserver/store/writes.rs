//! Writes: create, update, patch (the four types), delete; the rules a real apiserver
//! applies to each (server-owned metadata, status subresource, generation, no-op writes,
//! finalizers), and what a CRD changes in the served types.

use serde_json::{Value, json};

use super::{Part, PatchRequest, State, comparable, key, metadata, now, set_or_remove, spec_part};
use crate::support::apiserver::errors::ApiError;
use crate::support::apiserver::patch;
use crate::support::apiserver::types::{self, APIEXTENSIONS, ResourceType};

impl State {
    /// POST. `namespace` comes from the URL; the object's own must match it or be absent.
    pub fn create(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be an object".into()));
        }
        for (field, expected) in [("apiVersion", ty.api_version()), ("kind", ty.kind.clone())] {
            if let Some(given) = object[field].as_str().filter(|g| *g != expected) {
                return Err(ApiError::bad_request(format!(
                    "{field} {given:?} does not match the URL ({expected:?})"
                )));
            }
        }
        let meta = metadata(&mut object);
        if ty.namespaced {
            let namespace =
                namespace.ok_or_else(|| ApiError::bad_request("a namespace is required".into()))?;
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if given != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                _ => meta.insert("namespace".into(), json!(namespace)),
            };
        } else {
            meta.remove("namespace");
        }
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) => format!(
                "{prefix}{}",
                &uuid::Uuid::new_v4().simple().to_string()[..5]
            ),
            _ => {
                return Err(ApiError::invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            }
        };
        meta.insert("name".into(), json!(name));
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if ty.generation {
            meta.insert("generation".into(), json!(1));
        }
        let namespace = ty.namespaced.then_some(namespace).flatten();
        if let Some(namespace) = namespace {
            let namespaces = &self.types[0];
            if !self.objects.contains_key(&key(namespaces, None, namespace)) {
                return Err(ApiError::not_found("namespaces", namespace));
            }
        }
        let object_key = key(ty, namespace, &name);
        if self.objects.contains_key(&object_key) {
            return Err(ApiError::already_exists(&ty.qualified(), &name));
        }
        initial_status(ty, &mut object);
        if ty.group.is_empty() && ty.plural == "secrets" {
            fold_string_data(&mut object);
        }
        let rv = self.next_rv();
        metadata(&mut object).insert("resourceVersion".into(), json!(rv));
        let object = Self::with_type_meta(ty, object);
        self.objects.insert(object_key, object.clone());
        self.record(ty, namespace, "ADDED", &object);
        self.crd_changed(ty, &object, false);
        Ok(object)
    }

    /// PUT of the object or its status.
    pub fn update(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        body: Value,
    ) -> Result<Value, ApiError> {
        let old = self.get(ty, namespace, name)?;
        self.check_precondition(ty, &old, &body)?;
        self.write(ty, namespace, old, body, part)
    }

    /// PATCH of the object or its status; an apply patch creates a missing object.
    pub fn patch(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        request: PatchRequest,
    ) -> Result<Value, ApiError> {
        let existing = self.get(ty, namespace, name);
        let manager = request.field_manager.clone().unwrap_or_default();
        if request.kind == patch::PatchKind::Apply {
            if manager.is_empty() {
                return Err(ApiError::invalid(
                    "fieldManager: Required value: is required for apply patch".into(),
                ));
            }
            if request.body["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n != name)
            {
                return Err(ApiError::bad_request(
                    "the name of the applied object does not match the URL".into(),
                ));
            }
        }
        let old = match existing {
            Ok(old) => old,
            Err(error)
                if request.kind == patch::PatchKind::Apply
                    && part == Part::Main
                    && error.code == 404 =>
            {
                let mut object = patch::apply(&json!({}), None, &request.body);
                metadata(&mut object).insert("name".into(), json!(name));
                let created = self.create(ty, namespace, object)?;
                self.remember_applied(ty, namespace, name, &manager, part, request.body);
                return Ok(created);
            }
            Err(error) => return Err(error),
        };
        let candidate = match request.kind {
            patch::PatchKind::Json => patch::json_patch(&old, &request.body)?,
            patch::PatchKind::Merge | patch::PatchKind::Strategic => {
                patch::merge_patch(&old, &request.body)
            }
            patch::PatchKind::Apply => {
                let previous = self
                    .applied
                    .get(&(key(ty, namespace, name), manager.clone(), part));
                patch::apply(&old, previous, &request.body)
            }
        };
        self.check_precondition(ty, &old, &candidate)?;
        let written = self.write(ty, namespace, old, candidate, part)?;
        if request.kind == patch::PatchKind::Apply {
            self.remember_applied(ty, namespace, name, &manager, part, request.body);
        }
        Ok(written)
    }

    fn remember_applied(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        manager: &str,
        part: Part,
        body: Value,
    ) {
        self.applied
            .insert((key(ty, namespace, name), manager.to_string(), part), body);
    }

    fn check_precondition(
        &self,
        ty: &ResourceType,
        old: &Value,
        new: &Value,
    ) -> Result<(), ApiError> {
        let wanted = new["metadata"]["resourceVersion"]
            .as_str()
            .filter(|rv| !rv.is_empty());
        match wanted {
            Some(rv) if Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
                Err(ApiError::conflict(
                    &ty.qualified(),
                    old["metadata"]["name"].as_str().unwrap_or_default(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The common end of update and patch: status separation, server-owned metadata, no-op
    /// detection, generation, finalizers.
    fn write(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        old: Value,
        candidate: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        if part == Part::Status && !ty.status {
            return Err(ApiError::no_such_resource());
        }
        let mut new = match part {
            Part::Status => {
                let mut new = old.clone();
                set_or_remove(&mut new, "status", candidate.get("status"));
                new
            }
            Part::Main => {
                let mut new = candidate;
                if ty.status {
                    set_or_remove(&mut new, "status", old.get("status"));
                }
                new
            }
        };
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the object must be a JSON object".into(),
            ));
        }
        let old_meta = old["metadata"].clone();
        let meta = metadata(&mut new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(value) => meta.insert(field.to_string(), value.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("managedFields");
        let mut new = Self::with_type_meta(ty, new);
        if comparable(&old) == comparable(&new) {
            return Ok(old);
        }
        if ty.generation && spec_part(&old) != spec_part(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata(&mut new).insert("generation".into(), json!(generation));
        }
        let rv = self.next_rv();
        metadata(&mut new).insert("resourceVersion".into(), json!(rv));
        let name = new["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let deleting = new["metadata"]["deletionTimestamp"].is_string();
        let finalized = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if deleting && finalized {
            self.remove(ty, namespace, &name, &new);
        } else {
            self.objects.insert(key(ty, namespace, &name), new.clone());
            self.record(ty, namespace, "MODIFIED", &new);
            self.crd_changed(ty, &new, false);
        }
        Ok(new)
    }

    /// DELETE: with finalizers, marks the object as being deleted; without, removes it.
    pub fn delete(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let old = self.get(ty, namespace, name)?;
        let finalized = old["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if finalized {
            let mut gone = old;
            let rv = self.next_rv();
            metadata(&mut gone).insert("resourceVersion".into(), json!(rv));
            self.remove(ty, namespace, name, &gone);
            return Ok(gone);
        }
        if old["metadata"]["deletionTimestamp"].is_string() {
            return Ok(old);
        }
        let mut marked = old;
        let meta = metadata(&mut marked);
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        let rv = self.next_rv();
        metadata(&mut marked).insert("resourceVersion".into(), json!(rv));
        self.objects
            .insert(key(ty, namespace, name), marked.clone());
        self.record(ty, namespace, "MODIFIED", &marked);
        Ok(marked)
    }

    fn remove(&mut self, ty: &ResourceType, namespace: Option<&str>, name: &str, last: &Value) {
        let object_key = key(ty, namespace, name);
        self.objects.remove(&object_key);
        self.applied.retain(|(k, _, _), _| *k != object_key);
        self.record(ty, namespace, "DELETED", last);
        self.crd_changed(ty, last, true);
    }

    /// A created, changed or deleted CRD changes the served types; a deleted one takes its
    /// objects along.
    fn crd_changed(&mut self, ty: &ResourceType, crd: &Value, deleted: bool) {
        if ty.group != APIEXTENSIONS {
            return;
        }
        let defined = types::from_crd(crd);
        let Some(first) = defined.first().cloned() else {
            return;
        };
        self.types
            .retain(|t| !(t.group == first.group && t.plural == first.plural));
        if deleted {
            self.objects.retain(|(group, plural, _, _), _| {
                !(*group == first.group && *plural == first.plural)
            });
        } else {
            self.types.extend(defined);
        }
    }
}

/// The status of a new object: none for types with a status subresource (clients cannot set it
/// on create), except what the server itself reports for Namespaces and CRDs.
fn initial_status(ty: &ResourceType, object: &mut Value) {
    if !ty.status {
        return;
    }
    let status = if ty.group.is_empty() && ty.plural == "namespaces" {
        Some(json!({"phase": "Active"}))
    } else if ty.group == APIEXTENSIONS {
        Some(types::crd_status(object))
    } else {
        None
    };
    set_or_remove(object, "status", status.as_ref());
}

/// A Secret's `stringData` goes into `data`, base64-encoded, as the apiserver does.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|s| s.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}
