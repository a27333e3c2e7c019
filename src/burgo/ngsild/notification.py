"""Matching entity changes against subscriptions and building notifications (ETSI GS CIM 009,
5.3.1, 5.8.6): which trigger a change fires, and the Notification body in each format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from burgo.ngsild import geoquery, qlang
from burgo.ngsild.context import Context
from burgo.ngsild.model import (
    EMPTY,
    AttrKind,
    Entity,
    Instances,
    attribute_from_storage,
    attribute_to_storage,
    entity_from_storage,
    entity_to_storage,
)
from burgo.ngsild.render import (
    NGSI_LD_NULL,
    Format,
    Projection,
    RenderOptions,
    parse_lang,
    render_entity,
)
from burgo.ngsild.subscription import FORMATS, GEOPROPERTY_IRI, Subscription

_PREVIOUS_KEYS = {
    AttrKind.PROPERTY: "previousValue",
    AttrKind.GEO_PROPERTY: "previousValue",
    AttrKind.RELATIONSHIP: "previousObject",
    AttrKind.LANGUAGE_PROPERTY: "previousLanguageMap",
    AttrKind.VOCAB_PROPERTY: "previousVocab",
    AttrKind.JSON_PROPERTY: "previousJson",
    AttrKind.LIST_PROPERTY: "previousValueList",
    AttrKind.LIST_RELATIONSHIP: "previousObjectList",
}


@dataclass(frozen=True, slots=True)
class EntityChange:
    """One entity as a notification carries it: its state, what was deleted, what it was."""

    entity: Entity
    at: str
    deleted: bool = False
    deleted_attrs: tuple[str, ...] = ()
    previous: Mapping[str, Instances] = field(default_factory=lambda: EMPTY)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form for the outbox."""
        return {
            "entity": entity_to_storage(self.entity),
            "at": self.at,
            "deleted": self.deleted,
            "deletedAttrs": list(self.deleted_attrs),
            "previous": {
                name: [attribute_to_storage(a) for a in instances]
                for name, instances in self.previous.items()
            },
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EntityChange:
        """Rebuild from :meth:`to_json` output."""
        return cls(
            entity=entity_from_storage(doc["entity"]),
            at=doc["at"],
            deleted=doc["deleted"],
            deleted_attrs=tuple(doc["deletedAttrs"]),
            previous={
                name: tuple(attribute_from_storage(a) for a in instances)
                for name, instances in doc["previous"].items()
            },
        )


@dataclass(frozen=True, slots=True)
class Matcher:
    """A subscription ready to test changes against: its q and scopeQ parsed once."""

    subscription: Subscription
    q: qlang.QExpr | None = None
    scope_q: qlang.ScopeExpr | None = None
    geo_q: geoquery.GeoQuery | None = None

    @classmethod
    def of(cls, sub: Subscription) -> Matcher:
        """Parse the subscription's filters."""
        q = qlang.parse_q(sub.q, lambda t: sub.q_terms.get(t, t)) if sub.q else None
        scope_q = qlang.parse_scope_q(sub.scope_q) if sub.scope_q else None
        geo = None
        if sub.geo_q is not None:
            g = sub.geo_q
            geo = geoquery.parse_geo_query(
                g["georel"], g["geometry"], g["coordinates"], g[GEOPROPERTY_IRI], lambda t: t
            )
        return cls(sub, q, scope_q, geo)

    def selects(self, entity: Entity) -> bool:
        """Whether the subscription's entity selectors and filters accept ``entity``."""
        sub = self.subscription
        if sub.entities and not any(s.matches(entity.id, entity.types) for s in sub.entities):
            return False
        if self.q is not None and not qlang.evaluate(self.q, entity):
            return False
        if self.geo_q is not None and not geoquery.geo_matches(self.geo_q, entity):
            return False
        return self.scope_q is None or qlang.evaluate_scope(self.scope_q, entity.scope)

    def match(self, before: Entity | None, after: Entity | None, at: str) -> EntityChange | None:
        """The change to notify for one entity write, or None when the subscription ignores it."""
        sub = self.subscription
        if not sub.is_active or sub.time_interval is not None:
            return None
        if sub.expires_at is not None and sub.expires_at <= at:
            return None
        current = after if after is not None else before
        if current is None or not self.selects(current):
            return None
        if after is None:
            if "entityDeleted" not in sub.triggers:
                return None
            return EntityChange(current, at, deleted=True)
        old = before.attrs if before is not None else EMPTY
        created = [n for n in after.attrs if n not in old]
        deleted = [n for n in old if n not in after.attrs]
        updated = [n for n in after.attrs if n in old and old[n] != after.attrs[n]]
        watched = sub.watched_attributes
        if watched is not None:
            created = [n for n in created if n in watched]
            deleted = [n for n in deleted if n in watched]
            updated = [n for n in updated if n in watched]
        fired = (
            (before is None and "entityCreated" in sub.triggers)
            or (
                before is not None
                and "entityUpdated" in sub.triggers
                and bool(created or deleted or updated)
            )
            or ("attributeCreated" in sub.triggers and bool(created))
            or ("attributeUpdated" in sub.triggers and bool(updated))
            or ("attributeDeleted" in sub.triggers and bool(deleted))
        )
        if not fired:
            return None
        kept = (*updated, *deleted) if sub.notification.show_changes else deleted
        previous = {n: old[n] for n in kept}
        return EntityChange(after, at, deleted_attrs=tuple(deleted), previous=previous)


def coalesce(changes: Sequence[EntityChange]) -> list[EntityChange]:
    """One change per entity, the latest, in order of each entity's last change (throttling)."""
    latest: dict[str, EntityChange] = {}
    for change in changes:
        latest.pop(change.entity.id, None)
        latest[change.entity.id] = change
    return list(latest.values())


def render_options(sub: Subscription) -> RenderOptions:
    """How the subscription's notifications render entities."""
    n = sub.notification
    pick = None
    if n.attributes is not None:
        pick = frozenset({*n.attributes, "id", "type", "scope"})
    return RenderOptions(
        format=FORMATS[n.format],
        projection=Projection(pick=pick),
        sys_attrs=n.sys_attrs,
        lang=parse_lang(sub.lang) if sub.lang else None,
    )


def render_change(
    change: EntityChange, ctx: Context, options: RenderOptions, *, show_changes: bool = False
) -> dict[str, Any]:
    """One entity of a notification's ``data``."""
    entity = change.entity
    if change.deleted:
        types = [ctx.compact(t) for t in entity.types]
        return {
            "id": entity.id,
            "type": types[0] if len(types) == 1 else types,
            "deletedAt": change.at,
        }
    out = render_entity(entity, ctx, options)
    for name in change.deleted_attrs:
        if options.projection.shows(name):
            out[ctx.compact(name)] = _deleted_attribute(change, name, options, show_changes)
    if show_changes and options.format != Format.SIMPLIFIED:
        for name, instances in change.previous.items():
            short = ctx.compact(name)
            if name in change.deleted_attrs or not isinstance(out.get(short), dict):
                continue
            _add_previous(out[short], instances)
    return out


def _deleted_attribute(
    change: EntityChange, name: str, options: RenderOptions, show_changes: bool
) -> Any:
    if options.format == Format.SIMPLIFIED:
        return NGSI_LD_NULL
    old = change.previous.get(name)
    kind = old[0].kind if old else AttrKind.PROPERTY
    out: dict[str, Any] = {"type": kind.value} if options.format == Format.NORMALIZED else {}
    if kind == AttrKind.LANGUAGE_PROPERTY:
        out["languageMap"] = {"@none": NGSI_LD_NULL}
    elif kind == AttrKind.RELATIONSHIP:
        out["object"] = NGSI_LD_NULL
    else:
        out["value"] = NGSI_LD_NULL
    out["deletedAt"] = change.at
    if old and show_changes:
        _add_previous(out, old)
    return out


def _add_previous(rendered: dict[str, Any], instances: Instances) -> None:
    """Add previousValue (or previousObject, ...) of the default instance."""
    default = next((a for a in instances if a.dataset_id is None), None)
    if default is None or rendered.get("datasetId") is not None:
        return
    rendered[_PREVIOUS_KEYS[default.kind]] = default.value


def notification_body(
    sub: Subscription,
    changes: Sequence[EntityChange],
    ctx: Context,
    *,
    notification_id: str,
    notified_at: str,
    context: Any = None,
) -> dict[str, Any]:
    """The Notification (5.3.1) for ``changes``; ``context`` is put in the body when given."""
    options = render_options(sub)
    body: dict[str, Any] = {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": notified_at,
        "data": [
            render_change(c, ctx, options, show_changes=sub.notification.show_changes)
            for c in changes
        ],
    }
    if context is not None:
        body["@context"] = context
    return body
