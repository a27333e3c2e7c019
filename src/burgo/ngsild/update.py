"""What each NGSI-LD write operation does to an entity, as pure functions.

Each function takes the stored entity and the client's (already parsed) request and returns the
new entity, leaving timestamps right: ``createdAt`` survives, ``modifiedAt`` moves to ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from burgo.ngsild.errors import BadRequestData, ResourceNotFound
from burgo.ngsild.model import (
    Attribute,
    AttrKind,
    Entity,
    Instances,
    JsonValue,
    attribute_to_storage,
)
from burgo.ngsild.parse import NGSI_LD_NULL, Fragment, build_attribute

NOT_FOUND_REASON = "attribute (or the instance with that datasetId) does not exist"
NO_OVERWRITE_REASON = "attribute exists and options=noOverwrite was given"


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """Which attributes a write changed and which it left alone, with why (expanded names)."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)


def create_entity(entity: Entity, now: str) -> Entity:
    """A new entity stamped with its creation time."""
    attrs = {name: tuple(a.stamped(now) for a in inst) for name, inst in entity.attrs.items()}
    return replace(entity.with_attrs(attrs, now), created_at=now)


def replace_entity(current: Entity, new: Entity, now: str) -> Entity:
    """PUT /entities/{id}: every attribute replaced, ``createdAt`` of the entity kept."""
    attrs = {name: tuple(a.stamped(now) for a in inst) for name, inst in new.attrs.items()}
    return replace(current, types=new.types, scope=new.scope).with_attrs(attrs, now)


def _with_entity_members(current: Entity, fragment: Fragment, *, overwrite_scope: bool) -> Entity:
    types = tuple(dict.fromkeys((*current.types, *fragment.types)))
    scope = current.scope
    if fragment.scope is not None:
        scope = (
            fragment.scope
            if overwrite_scope
            else tuple(dict.fromkeys((*current.scope, *fragment.scope)))
        )
    return replace(current, types=types, scope=scope)


def _set_instance(instances: Instances, new: Attribute) -> Instances:
    kept = tuple(a for a in instances if a.dataset_id != new.dataset_id)
    return (*kept, new)


def append_attrs(
    current: Entity, fragment: Fragment, now: str, *, overwrite: bool = True
) -> tuple[Entity, UpdateResult]:
    """POST /entities/{id}/attrs: add attributes, replacing existing ones unless told not to."""
    attrs = dict(current.attrs)
    result = UpdateResult()
    for name, docs in fragment.attrs.items():
        changed = False
        for doc in docs:
            new = build_attribute(doc, fragment.names[name])
            existing = current.instance(name, new.dataset_id)
            if existing is not None and not overwrite:
                result.not_updated.append((name, NO_OVERWRITE_REASON))
                continue
            stamped = new.stamped(now, existing.created_at if existing else None)
            attrs[name] = _set_instance(attrs.get(name, ()), stamped)
            changed = True
        if changed:
            result.updated.append(name)
    if not result.updated and not fragment.types and fragment.scope is None:
        return current, result
    entity = _with_entity_members(current, fragment, overwrite_scope=overwrite)
    return entity.with_attrs(attrs, now), result


def set_default_instances(current: Entity, attrs: Mapping[str, Attribute], now: str) -> Entity:
    """Set the default instance of each attribute as ``append_attrs`` does for a fragment of
    default instances (``createdAt`` kept, ``modifiedAt`` now), taking built attributes instead
    of parsing documents: how device readings reach an entity."""
    stored = current.attrs
    # A mapping proxy's copy is its dict's (dict() would go through the mapping protocol).
    merged = stored.copy() if type(stored) is MappingProxyType else dict(stored)
    for name, new in attrs.items():
        instances = merged.get(name, ())
        if len(instances) == 1 and instances[0].dataset_id is None:  # the common case
            existing: Attribute | None = instances[0]
            others: Instances = ()
        else:
            existing = next((a for a in instances if a.dataset_id is None), None)
            others = tuple(a for a in instances if a.dataset_id is not None)
        created_at = existing.created_at if existing is not None else None
        if new.sub or new.dataset_id is not None:
            stamped = replace(new, dataset_id=None).stamped(now, created_at)
        else:
            stamped = Attribute(
                new.kind,
                new.value,
                None,
                new.observed_at,
                new.unit_code,
                new.object_type,
                new.sub,
                created_at or now,
                now,
            )
        merged[name] = (stamped, *others) if others else (stamped,)
    # The constructor, not dataclasses.replace: this runs for every reading a device sends.
    return Entity(
        current.id,
        current.types,
        MappingProxyType(merged),
        current.scope,
        current.created_at,
        now,
    )


def is_null_attribute(doc: Mapping[str, JsonValue]) -> bool:
    """Whether a patch instance asks to delete the attribute (its value is NGSI-LD Null)."""
    for key in ("value", "object", "vocab", "json"):
        if doc.get(key) == NGSI_LD_NULL:
            return True
    for key in ("valueList", "objectList"):
        value = doc.get(key)
        if (
            isinstance(value, list)
            and value
            and (value[0] == NGSI_LD_NULL or value[0] == {"object": NGSI_LD_NULL})
        ):
            return True
    language_map = doc.get("languageMap")
    return isinstance(language_map, Mapping) and language_map.get("@none") == NGSI_LD_NULL


def update_attrs(current: Entity, fragment: Fragment, now: str) -> tuple[Entity, UpdateResult]:
    """PATCH /entities/{id}/attrs: replace existing attributes; others are reported not updated."""
    attrs = dict(current.attrs)
    result = UpdateResult()
    for name, docs in fragment.attrs.items():
        changed = False
        for doc in docs:
            dataset_id = doc.get("datasetId")
            existing = current.instance(name, dataset_id)
            if existing is None:
                result.not_updated.append((name, NOT_FOUND_REASON))
                continue
            if is_null_attribute(doc):
                attrs[name] = tuple(a for a in attrs[name] if a.dataset_id != dataset_id)
            else:
                new = build_attribute(doc, fragment.names[name])
                attrs[name] = _set_instance(attrs[name], new.stamped(now, existing.created_at))
            changed = True
        if changed:
            result.updated.append(name)
    if not result.updated and not fragment.types and fragment.scope is None:
        return current, result
    entity = _with_entity_members(current, fragment, overwrite_scope=True)
    return entity.with_attrs(attrs, now), result


def merge_entity(
    current: Entity, fragment: Fragment, now: str, *, observed_at: str | None = None
) -> Entity:
    """PATCH /entities/{id}: merge each attribute into the stored one, add new ones, drop Nulls."""
    attrs = dict(current.attrs)
    for name, docs in fragment.attrs.items():
        for doc in docs:
            dataset_id = doc.get("datasetId")
            existing = current.instance(name, dataset_id)
            if is_null_attribute(doc):
                if existing is not None:
                    attrs[name] = tuple(a for a in attrs[name] if a.dataset_id != dataset_id)
                continue
            if existing is None:
                new = build_attribute(_complete(doc, fragment.names[name]), fragment.names[name])
                attrs[name] = _set_instance(attrs.get(name, ()), new.stamped(now))
                continue
            patch = dict(doc)
            if observed_at is not None and existing.observed_at and "observedAt" not in patch:
                patch["observedAt"] = observed_at
            merged = merge_instance(existing, patch, fragment.names[name])
            attrs[name] = _set_instance(attrs[name], merged.stamped(now, existing.created_at))
    entity = _with_entity_members(current, fragment, overwrite_scope=True)
    return entity.with_attrs(attrs, now)


def _complete(doc: Mapping[str, JsonValue], name: str) -> Mapping[str, JsonValue]:
    kind = doc.get("type")
    if kind is None or AttrKind(kind).value_key not in doc:
        raise BadRequestData(f"New attribute {name!r} needs a type and a value")
    return doc


def merge_instance(existing: Attribute, patch: Mapping[str, JsonValue], name: str) -> Attribute:
    """An attribute instance with a patch merged in (RFC 7396 style; NGSI-LD Null deletes)."""
    kind = patch.get("type")
    if kind is not None and kind != existing.kind.value:
        raise BadRequestData(
            f"Attribute {name!r} is a {existing.kind.value}; a patch cannot make it a {kind}"
        )
    merged = _merge_docs(attribute_to_storage(existing), patch, existing.kind)
    return build_attribute(merged, name)


def _merge_docs(
    target: Mapping[str, JsonValue], patch: Mapping[str, JsonValue], kind: AttrKind | None
) -> dict[str, JsonValue]:
    result = dict(target)
    for key, value in patch.items():
        if value == NGSI_LD_NULL:
            result.pop(key, None)
        elif (key == "value" and kind == AttrKind.PROPERTY) or key == "languageMap":
            result[key] = _merge_json(result.get(key), value)
        elif ":" in key and isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            sub_kind = result[key].get("type")
            result[key] = _merge_docs(result[key], value, AttrKind(sub_kind) if sub_kind else None)
        else:
            result[key] = value
    return result


def _merge_json(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping) or not isinstance(target, Mapping):
        return patch
    result = dict(target)
    for key, value in patch.items():
        if value == NGSI_LD_NULL:
            result.pop(key, None)
        else:
            result[key] = _merge_json(result.get(key), value)
    return result


def _require_instance(current: Entity, name: str, dataset_id: str | None) -> Attribute:
    existing = current.instance(name, dataset_id)
    if existing is None:
        suffix = f" with datasetId {dataset_id}" if dataset_id else ""
        raise ResourceNotFound(f"Entity {current.id} has no attribute {name}{suffix}")
    return existing


def partial_update_attr(
    current: Entity, name: str, patch: Mapping[str, JsonValue], now: str
) -> Entity:
    """PATCH /entities/{id}/attrs/{attrId}: merge a fragment into one existing instance."""
    dataset_id = patch.get("datasetId")
    existing = _require_instance(current, name, dataset_id)
    if is_null_attribute(patch):
        raise BadRequestData("A partial attribute update cannot delete the attribute itself")
    merged = merge_instance(existing, patch, name).stamped(now, existing.created_at)
    attrs = dict(current.attrs)
    attrs[name] = _set_instance(attrs[name], merged)
    return current.with_attrs(attrs, now)


def replace_attr(current: Entity, name: str, instances: Instances, now: str) -> Entity:
    """PUT /entities/{id}/attrs/{attrId}: replace existing instances as a whole."""
    attrs = dict(current.attrs)
    for new in instances:
        existing = _require_instance(current, name, new.dataset_id)
        attrs[name] = _set_instance(attrs[name], new.stamped(now, existing.created_at))
    return current.with_attrs(attrs, now)


def delete_attr(
    current: Entity, name: str, *, dataset_id: str | None = None, delete_all: bool = False
) -> tuple[Entity, Iterable[Attribute]]:
    """DELETE /entities/{id}/attrs/{attrId}: drop one instance (or all); returns what went."""
    if delete_all:
        removed = current.attrs.get(name, ())
        if not removed:
            raise ResourceNotFound(f"Entity {current.id} has no attribute {name}")
    else:
        removed = (_require_instance(current, name, dataset_id),)
    attrs = dict(current.attrs)
    attrs[name] = tuple(a for a in attrs[name] if a not in removed)
    return current.with_attrs(attrs, current.modified_at or ""), removed


_SIMPLIFIED_KEYS = {
    AttrKind.RELATIONSHIP: "object",
    AttrKind.LIST_PROPERTY: "valueList",
    AttrKind.LIST_RELATIONSHIP: "objectList",
}


def simplified_patch(
    current: Entity, body: Mapping[str, Any], expand: Callable[[str], str], lang: str | None
) -> dict[str, Any]:
    """A merge body sent in simplified (keyValues) form, rewritten to keep each existing
    attribute's type; with ``lang``, a string for a LanguageProperty sets that language only."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        existing = current.instance(expand(name)) if not name.startswith("@") else None
        if (
            existing is None
            or value == NGSI_LD_NULL
            or (
                isinstance(value, Mapping)
                and (
                    "type" in value
                    or any(
                        k in value
                        for k in (
                            "value",
                            "object",
                            "languageMap",
                            "vocab",
                            "json",
                            "valueList",
                            "objectList",
                        )
                    )
                )
            )
        ):
            out[name] = value
        elif existing.kind == AttrKind.LANGUAGE_PROPERTY and isinstance(value, str):
            out[name] = {"languageMap": {lang or "@none": value}}
        elif existing.kind in _SIMPLIFIED_KEYS:
            out[name] = {_SIMPLIFIED_KEYS[existing.kind]: value}
        elif existing.kind in (AttrKind.VOCAB_PROPERTY, AttrKind.JSON_PROPERTY):
            out[name] = {existing.kind.value_key: value}
        else:
            out[name] = value
    return out
