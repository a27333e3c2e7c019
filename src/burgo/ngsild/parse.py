"""Parse entities and attributes from client JSON (normalized or concise) into typed values.

Parsing happens in two steps: :func:`normalize_attribute` turns whatever form the client sent into
the expanded normalized form (names as IRIs, kinds explicit) and checks its structure; the model
then builds typed :class:`~burgo.ngsild.model.Attribute` values from it. Merges work on the
normalized form, so a patch and the attribute it patches meet in the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from burgo.ngsild.context import Context, core_context
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.geojson import is_mapping, looks_like_geometry, validate_geometry
from burgo.ngsild.model import (
    ATTRIBUTE_MEMBERS,
    EMPTY,
    KIND_BY_VALUE_KEY,
    Attribute,
    AttrKind,
    Entity,
    Instances,
    JsonValue,
    attribute_from_storage,
    order_instances,
)
from burgo.ngsild.times import canonical_datetime

NGSI_LD_NULL = "urn:ngsi-ld:null"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_NAME_FORBIDDEN = re.compile(r"[\s<>\"'=;()\\\x00-\x1f\x7f]")
_SCOPE = re.compile(r"^/[^\s/]*(/[^\s/]+)*/?(#)?$|^/#$")
_KINDS = {kind.value: kind for kind in AttrKind}
_KINDS.update({f"https://uri.etsi.org/ngsi-ld/{kind.value}": kind for kind in AttrKind})
_KINDS_BY_LOWER_NAME = {kind.value.lower(): kind for kind in AttrKind}
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_VALUE_KEYS = frozenset(KIND_BY_VALUE_KEY)
# Checked attribute names remembered per context (a bound, since names come from clients).
_NAMES_KEPT = 65536
_SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId", "lang"})

# Entity members that are not attributes.
ENTITY_MEMBERS = frozenset(
    {"id", "type", "scope", "@context", "createdAt", "modifiedAt", "deletedAt", "expiresAt"}
)
# Core-context terms that may not name an attribute (ETSI GS CIM 009, 4.5.1). `value` may: the
# Smart Data Models Device has a `value` attribute (its context maps it to ngsi-ld:hasValue), and as
# an entity member or an attrId it cannot be taken for an attribute's own value.
RESERVED_NAMES = (ATTRIBUTE_MEMBERS | ENTITY_MEMBERS | {"@id", "@type", "@context"}) - {"value"}


def check_uri(value: Any, what: str) -> str:
    """Return ``value`` if it is an absolute URI, else raise BadRequestData naming ``what``."""
    if not isinstance(value, str) or not _URI.match(value):
        raise BadRequestData(f"{what} must be a URI, got {value!r}")
    return value


def check_attribute_name(name: str) -> None:
    """Raise BadRequestData unless ``name`` may name an attribute."""
    if not name or _NAME_FORBIDDEN.search(name):
        raise BadRequestData(
            f"Invalid attribute name {name!r}: empty or with a forbidden character"
        )
    if name in RESERVED_NAMES:
        raise BadRequestData(f"{name!r} is reserved and cannot be used as an attribute name")


@cache
def _reserved_iris() -> frozenset[str]:
    core = core_context()
    return frozenset(core.expand(name) for name in RESERVED_NAMES)


@cache
def _reserved_sub_iris() -> frozenset[str]:
    # Inside an attribute, "value" is the attribute's own value, never a sub-attribute.
    return frozenset({core_context().expand("value")})


def attribute_iri(name: str, ctx: Context) -> str:
    """The expanded IRI of attribute ``name``, refusing names that are or expand to core terms."""
    iri = ctx.attribute_iris.get(name)
    if iri is not None:
        return iri
    check_attribute_name(name)
    iri = ctx.expand(name)
    if iri in _reserved_iris():
        raise BadRequestData(
            f"{name!r} expands to the reserved NGSI-LD term {iri} and cannot name an attribute"
        )
    if len(ctx.attribute_iris) < _NAMES_KEPT:
        ctx.attribute_iris[name] = iri
    return iri


def parse_types(raw: Any, ctx: Context) -> tuple[str, ...]:
    """Expanded entity types from a ``type`` member (a name or a list of names)."""
    names = raw if isinstance(raw, list) else [raw]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise BadRequestData("Entity type must be a non-empty string or a list of them")
    for name in names:
        if _NAME_FORBIDDEN.search(name):
            raise BadRequestData(f"Invalid entity type {name!r}")
    expanded = tuple(dict.fromkeys(ctx.expand(n) for n in names))
    return expanded


def parse_scope(raw: Any) -> tuple[str, ...]:
    """Scopes from a ``scope`` member: '/Madrid/Gardens' or a list of such paths."""
    scopes = raw if isinstance(raw, list) else [raw]
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise BadRequestData(f"Invalid scope {scope!r}: expected a path such as /Madrid/Parks")
    return tuple(dict.fromkeys(scopes))


def parse_entity(
    body: Any, ctx: Context, *, require_id: bool = True, now: str | None = None
) -> Entity:
    """A complete entity from a client's body (normalized or concise); no NGSI-LD Nulls.

    With ``now`` the entity comes out as created at that time, each attribute built once with its
    system times (the same entity as ``create_entity(parse_entity(body, ctx), now)``).
    """
    if not is_mapping(body):
        raise BadRequestData("An entity must be a JSON object")
    entity_id = body.get("id")
    if entity_id is None and "@id" in body:
        entity_id = body["@id"]
    if require_id or entity_id is not None:
        check_uri(entity_id, "Entity id")
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None:
        raise BadRequestData("An entity needs a type")
    types = parse_types(raw_type, ctx)
    scope = parse_scope(body["scope"]) if "scope" in body else ()
    attrs = parse_attributes(body, ctx, now=now)
    return Entity(
        id=entity_id or "",
        types=types,
        attrs=MappingProxyType(attrs),
        scope=scope,
        created_at=now,
        modified_at=now,
    )


@dataclass(frozen=True, slots=True)
class Fragment:
    """An entity fragment: attributes in normalized form, plus types and scopes it may add."""

    attrs: dict[str, list[dict[str, JsonValue]]]
    names: dict[str, str]
    types: tuple[str, ...] = ()
    scope: tuple[str, ...] | None = None


def parse_fragment(body: Any, ctx: Context, *, patch: bool) -> Fragment:
    """An entity fragment (append, update, merge); with ``patch`` NGSI-LD Nulls are kept."""
    if not isinstance(body, Mapping):
        raise BadRequestData("An entity fragment must be a JSON object")
    if "id" in body:
        check_uri(body["id"], "Entity id")
    types = parse_types(body["type"], ctx) if "type" in body else ()
    scope = parse_scope(body["scope"]) if "scope" in body else None
    attrs: dict[str, list[dict[str, JsonValue]]] = {}
    names: dict[str, str] = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS or name in ("@id", "@type"):
            continue
        iri = attribute_iri(name, ctx)
        docs = normalize_attribute(raw, ctx, name=name, patch=patch)
        if patch:
            _check_distinct((d.get("datasetId") for d in docs), name)
        else:
            _distinct_instances(tuple(build_attribute(d, name) for d in docs), name)
        attrs[iri] = docs
        names[iri] = name
    return Fragment(attrs=attrs, names=names, types=types, scope=scope)


def parse_attributes(
    body: Mapping[str, Any], ctx: Context, *, now: str | None = None
) -> dict[str, Instances]:
    """The attributes of an entity or fragment body, as typed instances; no NGSI-LD Nulls.
    With ``now`` each instance is stamped as created and modified then."""
    attrs: dict[str, Instances] = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS or name in ("@id", "@type"):
            continue
        iri = attribute_iri(name, ctx)
        normalized = normalize_attribute(raw, ctx, name=name)
        instances = tuple(build_attribute(n, name, now) for n in normalized)
        attrs[iri] = _distinct_instances(instances, name)
    return attrs


def _distinct_instances(instances: Instances, name: str) -> Instances:
    if len(instances) == 1:
        return instances
    _check_distinct((instance.dataset_id for instance in instances), name)
    return order_instances(instances)


def _check_distinct(dataset_ids: Iterable[Any], name: str) -> None:
    seen: set[Any] = set()
    for dataset_id in dataset_ids:
        if dataset_id in seen:
            label = "the default instance" if dataset_id is None else f"datasetId {dataset_id}"
            raise BadRequestData(f"Attribute {name!r} has more than one instance with {label}")
        seen.add(dataset_id)


def build_attribute(normalized: Mapping[str, Any], name: str, now: str | None = None) -> Attribute:
    """A typed instance from a checked normalized form, refusing any NGSI-LD Null left in it;
    stamped as created and modified at ``now`` when given."""
    if contains_null(normalized):
        raise BadRequestData(f"Attribute {name!r}: NGSI-LD Null is only allowed in patches")
    kind = _KINDS.get(normalized.get("type"))  # type: ignore[arg-type]
    if kind is not None and normalized.keys() <= _PLAIN_MEMBERS:
        # No sub-attribute nor datasetId: what attribute_from_storage builds, built directly.
        return Attribute(
            kind,
            normalized.get(kind.value_key),
            None,
            normalized.get("observedAt"),
            normalized.get("unitCode"),
            None,
            EMPTY,
            now,
            now,
        )
    return attribute_from_storage(normalized, now, now)


_PLAIN_MEMBERS = frozenset({"type", "value", "object", "observedAt", "unitCode"})


def contains_null(value: Any) -> bool:
    """Whether an NGSI-LD Null appears anywhere in ``value``."""
    # Plain loops over exact types first: this walks every value of every attribute written.
    kind = type(value)
    if kind is dict or kind is list:
        for item in value.values() if kind is dict else value:
            item_kind = type(item)
            if item_kind is str:
                if item == NGSI_LD_NULL:
                    return True
            elif item_kind not in _SCALARS and item is not None and contains_null(item):
                return True
        return False
    if kind is str or value == NGSI_LD_NULL:
        return bool(value == NGSI_LD_NULL)
    if isinstance(value, Mapping):
        return any(contains_null(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_null(v) for v in value)
    return False


_SCALARS = frozenset({int, float, bool})


def _is_instance_object(value: Any) -> bool:
    if not is_mapping(value):
        return False
    kind = value.get("type")
    if isinstance(kind, str) and kind in _KINDS:
        return True
    return kind is None and any(key in value for key in KIND_BY_VALUE_KEY)


def normalize_attribute(
    raw: Any, ctx: Context, *, name: str, patch: bool = False
) -> list[dict[str, JsonValue]]:
    """Each instance of an attribute in expanded normalized form, its structure checked.

    With ``patch`` the instances may omit their type and value and carry NGSI-LD Nulls, as merge
    and partial-update fragments do.
    """
    if isinstance(raw, list) and raw and all(_is_instance_object(item) for item in raw):
        return [_normalize_instance(item, ctx, name, patch, top=True) for item in raw]
    return [_normalize_instance(raw, ctx, name, patch, top=True)]


def _infer_kind(raw: Mapping[str, Any], name: str) -> AttrKind | None:
    """The attribute kind an object stands for; None when it is a plain value."""
    kind_name = raw.get("type")
    if kind_name is not None:
        if not isinstance(kind_name, str):
            return None
        if kind_name in _KINDS:
            return _KINDS[kind_name]
        near = _KINDS_BY_LOWER_NAME.get(kind_name.lower())
        if near is not None:
            raise BadRequestData(
                f"Attribute {name!r} has type {kind_name!r}; attribute types are case-sensitive,"
                f" did you mean {near.value!r}?"
            )
        # An object with a type of its own (such as a PostalAddress) is a Property's value.
        return None
    for key, kind in KIND_BY_VALUE_KEY.items():
        if key in raw:
            if kind == AttrKind.PROPERTY and looks_like_geometry(raw[key]):
                return AttrKind.GEO_PROPERTY
            return kind
    return None


def _normalize_instance(
    raw: Any, ctx: Context, name: str, patch: bool, *, top: bool
) -> dict[str, JsonValue]:
    if not patch and type(raw) is dict:
        plain = _plain_instance(raw, name)
        if plain is not None:
            return plain
    if not is_mapping(raw):
        return _concise_value(raw, name)
    if looks_like_geometry(raw):
        validate_geometry(raw, f"Attribute {name!r}")
        return {"type": AttrKind.GEO_PROPERTY.value, "value": dict(raw)}
    kind = _infer_kind(raw, name)
    metadata_only = (
        patch and bool(raw) and "type" not in raw and all(key in ATTRIBUTE_MEMBERS for key in raw)
    )
    if kind is None and not metadata_only:
        return _concise_value(raw, name)
    doc: dict[str, JsonValue] = {}
    if kind is not None:
        doc["type"] = kind.value
        _check_members(raw, kind, name)
    for key, value in raw.items():
        if key == "type" or key in _SYSTEM_MEMBERS:
            continue
        if key in KIND_BY_VALUE_KEY:
            doc[key] = _normalize_value(kind, key, value, ctx, name, patch)
        elif key == "datasetId":
            if not top:
                raise BadRequestData(f"Sub-attribute {name!r} cannot have a datasetId")
            doc[key] = check_uri(value, f"datasetId of {name!r}")
        elif key == "observedAt":
            doc[key] = (
                value
                if patch and value == NGSI_LD_NULL
                else canonical_datetime(value, f"observedAt of {name!r}")
            )
        elif key == "unitCode":
            if not isinstance(value, str) or not value:
                raise BadRequestData(f"unitCode of {name!r} must be a non-empty string")
            doc[key] = value
        elif key == "objectType":
            doc[key] = _expand_object_type(value, ctx, name)
        elif key == "@context":
            raise BadRequestData(f"Attribute {name!r} cannot embed an @context")
        else:
            iri = attribute_iri(key, ctx)
            if iri in _reserved_sub_iris():
                raise BadRequestData(f"{key!r} cannot name a sub-attribute of {name!r}")
            if patch and value == NGSI_LD_NULL:
                doc[iri] = NGSI_LD_NULL
            else:
                doc[iri] = _normalize_instance(value, ctx, key, patch, top=False)
    if kind is not None and kind.value_key not in doc and not patch:
        raise BadRequestData(f"Attribute {name!r} of type {kind.value} needs a {kind.value_key!r}")
    return doc


_PLAIN_KINDS = {"Property": AttrKind.PROPERTY, "Relationship": AttrKind.RELATIONSHIP}


def _plain_instance(raw: dict[str, Any], name: str) -> dict[str, JsonValue] | None:
    """The normalized form of the commonest instances, a Property or a Relationship (one object)
    with its value and no more than observedAt and unitCode; None for anything else, which
    :func:`_normalize_instance` then checks in full (and refuses with the right message)."""
    kind_name = raw.get("type")
    if type(kind_name) is not str:
        return None
    kind = _PLAIN_KINDS.get(kind_name)
    if kind is None:
        return None
    value_key = kind.value_key
    doc: dict[str, JsonValue] = {"type": kind.value}
    for key, value in raw.items():
        if key == "type":
            continue
        if key == value_key:
            if value is None:
                return None
            if kind is AttrKind.RELATIONSHIP and (type(value) is not str or not _URI.match(value)):
                return None
            doc[key] = value
        elif key == "observedAt" and type(value) is str:
            try:
                doc[key] = canonical_datetime(value)
            except BadRequestData:
                return None  # refused by the full check, which names the attribute
        elif key == "unitCode" and kind is AttrKind.PROPERTY and type(value) is str and value:
            doc[key] = value
        else:
            return None
    return doc if value_key in doc else None


def _concise_value(raw: Any, name: str) -> dict[str, JsonValue]:
    if raw is None:
        raise BadRequestData(f"Attribute {name!r} has a null value; JSON null is not allowed")
    return {"type": AttrKind.PROPERTY.value, "value": raw}


def _check_members(raw: Mapping[str, Any], kind: AttrKind, name: str) -> None:
    allowed = {kind.value_key, "value"} if kind == AttrKind.GEO_PROPERTY else {kind.value_key}
    if not _VALUE_KEYS.intersection(raw) <= allowed:
        for key in KIND_BY_VALUE_KEY:
            if key in raw and key not in allowed:
                raise BadRequestData(f"Attribute {name!r} of type {kind.value} cannot have {key!r}")
    if "unitCode" in raw and kind in (
        AttrKind.RELATIONSHIP,
        AttrKind.LIST_RELATIONSHIP,
        AttrKind.LANGUAGE_PROPERTY,
        AttrKind.VOCAB_PROPERTY,
        AttrKind.JSON_PROPERTY,
    ):
        raise BadRequestData(f"Attribute {name!r} of type {kind.value} cannot have a unitCode")
    if "objectType" in raw and kind not in (AttrKind.RELATIONSHIP, AttrKind.LIST_RELATIONSHIP):
        raise BadRequestData(f"Only relationships carry objectType ({name!r})")


def _normalize_value(
    kind: AttrKind | None, key: str, value: Any, ctx: Context, name: str, patch: bool
) -> JsonValue:
    if value is None:
        raise BadRequestData(f"Attribute {name!r}: {key!r} cannot be JSON null")
    if patch and value == NGSI_LD_NULL:
        return value
    effective = kind or KIND_BY_VALUE_KEY[key]
    if effective == AttrKind.GEO_PROPERTY:
        validate_geometry(value, f"Attribute {name!r}")
    elif effective == AttrKind.RELATIONSHIP:
        objects = value if isinstance(value, list) else [value]
        if not objects:
            raise BadRequestData(f"Relationship {name!r} needs an object")
        for target in objects:
            check_uri(target, f"Object of relationship {name!r}")
    elif effective == AttrKind.LANGUAGE_PROPERTY:
        _check_language_map(value, name, patch)
    elif effective == AttrKind.VOCAB_PROPERTY:
        terms = value if isinstance(value, list) else [value]
        if not terms or not all(isinstance(t, str) and t for t in terms):
            raise BadRequestData(f"VocabProperty {name!r} needs a term or a list of terms")
        expanded = [ctx.expand(t) for t in terms]
        return expanded if isinstance(value, list) else expanded[0]
    elif effective == AttrKind.JSON_PROPERTY:
        if not isinstance(value, dict | list):
            raise BadRequestData(f"JsonProperty {name!r} needs a JSON object or array in 'json'")
    elif effective == AttrKind.LIST_PROPERTY:
        if not isinstance(value, list):
            raise BadRequestData(f"ListProperty {name!r} needs an array in 'valueList'")
        if any(item is None for item in value):
            raise BadRequestData(f"ListProperty {name!r}: JSON null is not allowed in 'valueList'")
    elif effective == AttrKind.LIST_RELATIONSHIP:
        return _normalize_object_list(value, name)
    return value


def _check_language_map(value: Any, name: str, patch: bool) -> None:
    if not isinstance(value, Mapping) or not value:
        raise BadRequestData(f"LanguageProperty {name!r} needs a non-empty languageMap object")
    for tag, text in value.items():
        if tag != "@none" and not _LANGUAGE_TAG.match(tag):
            raise BadRequestData(f"LanguageProperty {name!r}: {tag!r} is not a language tag")
        texts = text if isinstance(text, list) else [text]
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestData(f"LanguageProperty {name!r}: values must be strings")


def _normalize_object_list(value: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadRequestData(f"ListRelationship {name!r} needs an array in 'objectList'")
    objects: list[dict[str, str]] = []
    for item in value:
        target = item.get("object") if isinstance(item, Mapping) else item
        objects.append({"object": check_uri(target, f"Object in ListRelationship {name!r}")})
    return objects


def _expand_object_type(value: Any, ctx: Context, name: str) -> JsonValue:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise BadRequestData(f"objectType of {name!r} must be a type name or a list of them")
    expanded = [ctx.expand(n) for n in names]
    return expanded if isinstance(value, list) else expanded[0]
