"""Render entities for clients: normalized, concise or simplified (keyValues), and as GeoJSON.

Names are compacted with the request's context; ``pick``/``omit``/``attrs`` project the entity;
``lang`` turns each LanguageProperty into a Property in the language asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from burgo.ngsild.context import Context
from burgo.ngsild.geojson import looks_like_geometry
from burgo.ngsild.model import (
    ATTRIBUTE_MEMBERS,
    Attribute,
    AttrKind,
    Entity,
    Instances,
    JsonValue,
)

NGSI_LD_NULL = "urn:ngsi-ld:null"


class Format(StrEnum):
    """The representations of an entity."""

    NORMALIZED = "normalized"
    CONCISE = "concise"
    SIMPLIFIED = "simplified"


@dataclass(frozen=True, slots=True)
class Projection:
    """Which members of an entity to show: ``pick`` (None = all) minus ``omit``, by expanded name.

    The entity members ``id``, ``type`` and ``scope`` keep their short names.
    """

    pick: frozenset[str] | None = None
    omit: frozenset[str] = frozenset()

    def shows(self, name: str) -> bool:
        """Whether member ``name`` is part of the output."""
        return (self.pick is None or name in self.pick) and name not in self.omit


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How to render: format, projection, system attributes, language preference."""

    format: Format = Format.NORMALIZED
    projection: Projection = Projection()
    sys_attrs: bool = False
    lang: tuple[tuple[str, float], ...] | None = None


def parse_lang(value: str) -> tuple[tuple[str, float], ...]:
    """Language preferences from ``lang=fr-CH,fr;q=0.9,*;q=0.5``, best first."""
    prefs: list[tuple[str, float]] = []
    for part in value.split(","):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if tag.strip():
            prefs.append((tag.strip(), weight))
    return tuple(sorted(prefs, key=lambda p: -p[1]))


def best_language(
    language_map: Mapping[str, Any], prefs: tuple[tuple[str, float], ...]
) -> tuple[str, Any]:
    """The (tag, text) of a language map that best matches the preferences."""
    lowered = {tag.lower(): tag for tag in language_map}
    for tag, weight in prefs:
        if weight <= 0:
            continue
        wanted = tag.lower()
        if wanted == "*":
            break
        if wanted in lowered:
            return lowered[wanted], language_map[lowered[wanted]]
        for candidate, original in lowered.items():
            if candidate.startswith(wanted + "-") or wanted.startswith(candidate + "-"):
                return original, language_map[original]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    first = next(iter(language_map))
    return first, language_map[first]


def render_entity(entity: Entity, ctx: Context, options: RenderOptions) -> dict[str, JsonValue]:
    """The entity as the client asked for it (without @context)."""
    projection = options.projection
    out: dict[str, JsonValue] = {}
    if projection.shows("id"):
        out["id"] = entity.id
    if projection.shows("type"):
        types = [ctx.compact(t) for t in entity.types]
        out["type"] = types[0] if len(types) == 1 else types
    if entity.scope and projection.shows("scope"):
        out["scope"] = entity.scope[0] if len(entity.scope) == 1 else list(entity.scope)
    for name, instances in entity.attrs.items():
        if projection.shows(name):
            out[ctx.compact(name)] = render_attribute(instances, ctx, options)
    if options.sys_attrs:
        if entity.created_at:
            out["createdAt"] = entity.created_at
        if entity.modified_at:
            out["modifiedAt"] = entity.modified_at
    return out


def render_attribute(instances: Instances, ctx: Context, options: RenderOptions) -> JsonValue:
    """One attribute (all its instances) in the requested format."""
    if options.format == Format.SIMPLIFIED:
        if len(instances) == 1 and instances[0].dataset_id is None:
            return _simple_value(instances[0], ctx, options)
        return {
            "dataset": {
                (a.dataset_id or "@none"): _simple_value(a, ctx, options) for a in instances
            }
        }
    if len(instances) == 1:
        return _render_instance(instances[0], ctx, options, alone=True)
    return [_render_instance(a, ctx, options, alone=False) for a in instances]


def _simple_value(attr: Attribute, ctx: Context, options: RenderOptions) -> JsonValue:
    kind = attr.kind
    if kind == AttrKind.LANGUAGE_PROPERTY:
        if options.lang is not None:
            return best_language(attr.value, options.lang)[1]
        return {"languageMap": attr.value}
    if kind == AttrKind.VOCAB_PROPERTY:
        return {"vocab": _compact_terms(attr.value, ctx)}
    if kind == AttrKind.JSON_PROPERTY:
        return {"json": attr.value}
    if kind == AttrKind.LIST_RELATIONSHIP:
        return [item["object"] for item in attr.value]
    return attr.value


def _compact_terms(value: JsonValue, ctx: Context) -> JsonValue:
    if isinstance(value, list):
        return [ctx.compact(v) for v in value]
    return ctx.compact(value)


def _render_instance(
    attr: Attribute, ctx: Context, options: RenderOptions, *, alone: bool
) -> JsonValue:
    concise = options.format == Format.CONCISE
    kind, value = attr.kind, attr.value
    if kind == AttrKind.LANGUAGE_PROPERTY and options.lang is not None:
        tag, text = best_language(value, options.lang)
        out: dict[str, JsonValue] = {} if concise else {"type": AttrKind.PROPERTY.value}
        out["value"] = text
        out["lang"] = tag
    else:
        if kind == AttrKind.VOCAB_PROPERTY:
            value = _compact_terms(value, ctx)
        out = {} if concise and not _needs_type(kind, value) else {"type": kind.value}
        out[kind.value_key] = value
    if attr.dataset_id is not None:
        out["datasetId"] = attr.dataset_id
    if attr.observed_at is not None:
        out["observedAt"] = attr.observed_at
    if attr.unit_code is not None:
        out["unitCode"] = attr.unit_code
    if attr.object_type is not None:
        out["objectType"] = _compact_terms(attr.object_type, ctx)
    for name, sub in attr.sub.items():
        out[ctx.compact(name)] = _render_instance(sub, ctx, options, alone=True)
    if options.sys_attrs:
        if attr.created_at:
            out["createdAt"] = attr.created_at
        if attr.modified_at:
            out["modifiedAt"] = attr.modified_at
    if concise and alone and len(out) == 1 and "value" in out and _bare_is_safe(out["value"]):
        return out["value"]
    if concise and alone and kind == AttrKind.GEO_PROPERTY and len(out) == 1:
        return out["value"]
    return out


def _needs_type(kind: AttrKind, value: JsonValue) -> bool:
    """Whether concise ``{"value": ...}`` would read back as another kind (a geometry value)."""
    return kind == AttrKind.PROPERTY and looks_like_geometry(value)


def _bare_is_safe(value: JsonValue) -> bool:
    """Whether a bare concise value reads back as a Property holding exactly that value."""
    if isinstance(value, Mapping):
        # Any attribute member (type, value, object, observedAt, ...) could be read as structure.
        return ATTRIBUTE_MEMBERS.isdisjoint(value)
    if isinstance(value, list):
        return not value or not all(isinstance(v, Mapping) for v in value)
    return bool(value != NGSI_LD_NULL)


def render_feature(
    entity: Entity, ctx: Context, options: RenderOptions, geometry_property: str
) -> dict[str, JsonValue]:
    """The entity as a GeoJSON Feature, its geometry taken from ``geometry_property``."""
    geometry_attr = entity.instance(geometry_property)
    geometry = (
        geometry_attr.value
        if geometry_attr is not None and geometry_attr.kind == AttrKind.GEO_PROPERTY
        else None
    )
    properties = render_entity(entity, ctx, options)
    properties.pop("id", None)
    return {"id": entity.id, "type": "Feature", "geometry": geometry, "properties": properties}
