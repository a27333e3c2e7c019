"""NGSI-LD entities and attributes as typed values.

Names (attribute names, entity types) are held expanded to full IRIs; a context compacts them on
output. An entity maps each attribute name to its instances, one per ``datasetId``, the default
instance (no datasetId) first.

>>> temp = Attribute(AttrKind.PROPERTY, 21.5, unit_code="CEL")
>>> attrs = {"https://example.org/t": (temp,)}
>>> room = Entity("urn:ngsi-ld:Room:1", ("https://example.org/Room",), attrs)
>>> room.instance("https://example.org/t").value
21.5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

JsonValue = Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


class AttrKind(StrEnum):
    """The NGSI-LD attribute types."""

    PROPERTY = "Property"
    RELATIONSHIP = "Relationship"
    GEO_PROPERTY = "GeoProperty"
    LANGUAGE_PROPERTY = "LanguageProperty"
    VOCAB_PROPERTY = "VocabProperty"
    JSON_PROPERTY = "JsonProperty"
    LIST_PROPERTY = "ListProperty"
    LIST_RELATIONSHIP = "ListRelationship"

    @property
    def value_key(self) -> str:
        """The member that carries this kind's value in the normalized form."""
        return _VALUE_KEYS[self]


_VALUE_KEYS = {
    AttrKind.PROPERTY: "value",
    AttrKind.RELATIONSHIP: "object",
    AttrKind.GEO_PROPERTY: "value",
    AttrKind.LANGUAGE_PROPERTY: "languageMap",
    AttrKind.VOCAB_PROPERTY: "vocab",
    AttrKind.JSON_PROPERTY: "json",
    AttrKind.LIST_PROPERTY: "valueList",
    AttrKind.LIST_RELATIONSHIP: "objectList",
}
_KIND_OF = {kind.value: kind for kind in AttrKind}
KIND_BY_VALUE_KEY = {
    key: kind for kind, key in _VALUE_KEYS.items() if kind != AttrKind.GEO_PROPERTY
}

# Members of an attribute that are not sub-attributes.
ATTRIBUTE_MEMBERS = frozenset(
    {
        "type",
        "datasetId",
        "observedAt",
        "unitCode",
        "objectType",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "lang",
        *_VALUE_KEYS.values(),
    }
)


@dataclass(frozen=True, slots=True, init=False)
class Attribute:
    """One instance of an attribute (or a sub-attribute): its kind, value and metadata."""

    kind: AttrKind
    value: JsonValue
    dataset_id: str | None = None
    observed_at: str | None = None
    unit_code: str | None = None
    object_type: JsonValue = None
    sub: Mapping[str, Attribute] = field(default_factory=lambda: EMPTY)
    created_at: str | None = None
    modified_at: str | None = None

    def __init__(
        self,
        kind: AttrKind,
        value: JsonValue,
        dataset_id: str | None = None,
        observed_at: str | None = None,
        unit_code: str | None = None,
        object_type: JsonValue = None,
        sub: Mapping[str, Attribute] = EMPTY,
        created_at: str | None = None,
        modified_at: str | None = None,
    ) -> None:
        # The generated constructor of a frozen class goes through object.__setattr__ for each
        # field; setting the slots through their own descriptors takes half the time, and every
        # instance stored, read or changed is built here. The class stays frozen.
        _set_kind(self, kind)
        _set_value(self, value)
        _set_dataset_id(self, dataset_id)
        _set_observed_at(self, observed_at)
        _set_unit_code(self, unit_code)
        _set_object_type(self, object_type)
        _set_sub(self, sub)
        _set_created_at(self, created_at)
        _set_modified_at(self, modified_at)

    def stamped(self, now: str, created_at: str | None = None) -> Attribute:
        """This instance with its system timestamps set (sub-attributes too)."""
        sub = EMPTY
        if self.sub:
            sub = MappingProxyType(
                {name: s.stamped(now, s.created_at or now) for name, s in self.sub.items()}
            )
        # The constructor, not dataclasses.replace: this runs for every attribute written.
        return Attribute(
            self.kind,
            self.value,
            self.dataset_id,
            self.observed_at,
            self.unit_code,
            self.object_type,
            sub,
            created_at or now,
            now,
        )


# The setters of Attribute's slots (the class dataclass made, with its slots).
_set_kind, _set_value, _set_dataset_id, _set_observed_at, _set_unit_code = (
    Attribute.__dict__[name].__set__
    for name in ("kind", "value", "dataset_id", "observed_at", "unit_code")
)
_set_object_type, _set_sub, _set_created_at, _set_modified_at = (
    Attribute.__dict__[name].__set__ for name in ("object_type", "sub", "created_at", "modified_at")
)

Instances = tuple[Attribute, ...]


@dataclass(frozen=True, slots=True)
class Entity:
    """An NGSI-LD entity: id, types, scopes and attributes, with names expanded to IRIs."""

    id: str
    types: tuple[str, ...]
    attrs: Mapping[str, Instances] = field(default_factory=lambda: EMPTY)
    scope: tuple[str, ...] = ()
    created_at: str | None = None
    modified_at: str | None = None

    def instance(self, name: str, dataset_id: str | None = None) -> Attribute | None:
        """The instance of attribute ``name`` with ``dataset_id`` (default instance when None)."""
        for candidate in self.attrs.get(name, ()):
            if candidate.dataset_id == dataset_id:
                return candidate
        return None

    def with_attrs(self, attrs: Mapping[str, Instances], now: str) -> Entity:
        """A copy with ``attrs`` as its attributes, modified at ``now``."""
        cleaned = {name: order_instances(inst) for name, inst in attrs.items() if inst}
        return replace(self, attrs=MappingProxyType(cleaned), modified_at=now)


def order_instances(instances: Instances) -> Instances:
    """Instances with the default one first and the others by datasetId."""
    if len(instances) < 2:
        return instances
    return tuple(sorted(instances, key=lambda a: (a.dataset_id is not None, a.dataset_id or "")))


def attribute_to_storage(attr: Attribute) -> dict[str, JsonValue]:
    """The expanded normalized form of an instance, as the store keeps it."""
    doc: dict[str, JsonValue] = {"type": attr.kind.value, attr.kind.value_key: attr.value}
    if attr.dataset_id is not None:
        doc["datasetId"] = attr.dataset_id
    if attr.observed_at is not None:
        doc["observedAt"] = attr.observed_at
    if attr.unit_code is not None:
        doc["unitCode"] = attr.unit_code
    if attr.object_type is not None:
        doc["objectType"] = attr.object_type
    if attr.created_at is not None:
        doc["createdAt"] = attr.created_at
    if attr.modified_at is not None:
        doc["modifiedAt"] = attr.modified_at
    for name, sub in attr.sub.items():
        doc[name] = attribute_to_storage(sub)
    return doc


def attribute_from_storage(
    doc: Mapping[str, JsonValue], created_at: str | None = None, modified_at: str | None = None
) -> Attribute:
    """Rebuild an instance from :func:`attribute_to_storage` output; ``created_at`` and
    ``modified_at`` stamp it (and its sub-attributes) where the document has no times."""
    kind = _KIND_OF[doc["type"]]
    sub = {
        name: attribute_from_storage(value, created_at, modified_at)
        for name, value in doc.items()
        if name not in ATTRIBUTE_MEMBERS
    }
    return Attribute(
        kind,
        doc.get(_VALUE_KEYS[kind]),
        doc.get("datasetId"),
        doc.get("observedAt"),
        doc.get("unitCode"),
        doc.get("objectType"),
        MappingProxyType(sub) if sub else EMPTY,
        doc.get("createdAt", created_at),
        doc.get("modifiedAt", modified_at),
    )


def entity_to_storage(entity: Entity) -> dict[str, JsonValue]:
    """The stored document of an entity (id and types are also kept in their own columns)."""
    return {
        "id": entity.id,
        "type": list(entity.types),
        "scope": list(entity.scope),
        "createdAt": entity.created_at,
        "modifiedAt": entity.modified_at,
        "attrs": {
            name: [attribute_to_storage(a) for a in instances]
            for name, instances in entity.attrs.items()
        },
    }


def entity_from_storage(doc: Mapping[str, JsonValue]) -> Entity:
    """Rebuild an entity from :func:`entity_to_storage` output."""
    attrs = {
        name: tuple(attribute_from_storage(a) for a in instances)
        for name, instances in doc["attrs"].items()
    }
    return Entity(
        id=doc["id"],
        types=tuple(doc["type"]),
        attrs=MappingProxyType(attrs),
        scope=tuple(doc.get("scope") or ()),
        created_at=doc.get("createdAt"),
        modified_at=doc.get("modifiedAt"),
    )
