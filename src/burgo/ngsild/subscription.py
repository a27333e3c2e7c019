"""NGSI-LD subscriptions (ETSI GS CIM 009, 5.2.12-5.2.15, 5.8): the typed value, parsed once
from a client's JSON and kept with names expanded to IRIs.

>>> from burgo.ngsild.context import core_context
>>> body = {"type": "Subscription", "entities": [{"type": "Room"}],
...         "notification": {"endpoint": {"uri": "http://example.org/notify"}}}
>>> sub = parse_subscription(body, core_context(), now="2024-05-01T10:00:00.000Z",
...                          new_id="urn:ngsi-ld:Subscription:1")
>>> sub.entities[0].type
'https://uri.etsi.org/ngsi-ld/default-context/Room'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from burgo.ngsild import geoquery, qlang
from burgo.ngsild.context import Context
from burgo.ngsild.errors import BadRequestData, OperationNotSupported
from burgo.ngsild.parse import check_attribute_name, check_uri
from burgo.ngsild.render import Format, parse_lang
from burgo.ngsild.times import canonical_datetime

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
FORMATS = {
    "normalized": Format.NORMALIZED,
    "concise": Format.CONCISE,
    "keyValues": Format.SIMPLIFIED,
    "simplified": Format.SIMPLIFIED,
}
ACCEPTS = ("application/json", "application/ld+json")
SCHEMES = ("http", "https", "mqtt", "mqtts")
GEOPROPERTY_IRI = "geopropertyIri"
MQTT_QOS = "MQTT-QoS"
MQTT_VERSION = "MQTT-Version"
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
# Members the broker writes; a client sending them back (GET, edit, POST) is not an error.
READ_ONLY = frozenset({"status", "createdAt", "modifiedAt", "@context"})
NOTIFICATION_READ_ONLY = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
)


@dataclass(frozen=True, slots=True)
class EntitySelector:
    """Which entities a subscription watches: by id or id pattern, and type (expanded)."""

    type: str
    id: str | None = None
    id_pattern: str | None = None

    def matches(self, entity_id: str, types: tuple[str, ...]) -> bool:
        """Whether an entity with this id and these types is selected."""
        if self.type not in types:
            return False
        if self.id is not None:
            return entity_id == self.id
        if self.id_pattern is not None:
            return re.fullmatch(self.id_pattern, entity_id) is not None
        return True


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how notifications go: URI, media type, extra headers or MQTT settings."""

    uri: str
    accept: str = "application/json"
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        """The URI scheme: http, https, mqtt or mqtts."""
        return urlsplit(self.uri).scheme.lower()

    def notifier(self, key: str) -> str | None:
        """One notifierInfo value."""
        return next((v for k, v in self.notifier_info if k == key), None)


@dataclass(frozen=True, slots=True)
class NotificationParams:
    """What a notification holds and where it goes."""

    endpoint: Endpoint
    attributes: tuple[str, ...] | None = None
    format: str = "normalized"
    show_changes: bool = False
    sys_attrs: bool = False


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription with names expanded to IRIs; ``context`` is the @context it was made with."""

    id: str
    notification: NotificationParams
    entities: tuple[EntitySelector, ...] = ()
    watched_attributes: tuple[str, ...] | None = None
    triggers: tuple[str, ...] = DEFAULT_TRIGGERS
    q: str | None = None
    q_terms: Mapping[str, str] = field(default_factory=dict)
    geo_q: Mapping[str, Any] | None = None
    scope_q: str | None = None
    is_active: bool = True
    expires_at: str | None = None
    throttling: float | None = None
    time_interval: float | None = None
    lang: str | None = None
    jsonld_context: str | None = None
    name: str | None = None
    description: str | None = None
    context: Any = None
    created_at: str | None = None
    modified_at: str | None = None

    def status(self, now: str) -> str:
        """``active``, ``paused`` (isActive false) or ``expired`` at ``now``."""
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.is_active else "paused"


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """How delivery has gone: counters and times (5.2.14), kept by the store."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    failing: bool = False
    pending: int = 0


# -- parsing ---------------------------------------------------------------------------------


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequestData(f"{name} must be true or false, got {value!r}")
    return value


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadRequestData(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequestData(f"{name} must be a non-empty string, got {value!r}")
    return value


def _names(value: Any, name: str, ctx: Context) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"{name} must be a non-empty array of attribute names")
    names = []
    for item in value:
        check_attribute_name(_string(item, f"An item of {name}"))
        names.append(ctx.expand(item))
    return tuple(dict.fromkeys(names))


def _selector(raw: Any, ctx: Context) -> EntitySelector:
    if not isinstance(raw, dict):
        raise BadRequestData("Each item of entities must be an object")
    unknown = set(raw) - {"id", "idPattern", "type"}
    if unknown:
        raise BadRequestData(f"Unknown member(s) in entities: {', '.join(sorted(unknown))}")
    if "type" not in raw:
        raise BadRequestData("Each item of entities must name a type")
    if "id" in raw and "idPattern" in raw:
        raise BadRequestData("An item of entities cannot have both id and idPattern")
    pattern = raw.get("idPattern")
    if pattern is not None:
        try:
            re.compile(_string(pattern, "idPattern"))
        except re.error as exc:
            raise BadRequestData(f"idPattern {pattern!r} is not a valid pattern: {exc}") from exc
    entity_id = check_uri(raw["id"], "entities[].id") if "id" in raw else None
    return EntitySelector(ctx.expand(_string(raw["type"], "type")), entity_id, pattern)


def _key_values(raw: Any, name: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise BadRequestData(f"{name} must be an array of {{key, value}} objects")
    pairs = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and set(item) == {"key", "value"}
            and isinstance(item["key"], str)
            and isinstance(item["value"], str)
        ):
            raise BadRequestData(f"Each item of {name} must be {{'key': str, 'value': str}}")
        pairs.append((item["key"], item["value"]))
    return tuple(pairs)


def _endpoint(raw: Any) -> Endpoint:
    if not isinstance(raw, dict):
        raise BadRequestData("notification.endpoint must be an object")
    unknown = set(raw) - {"uri", "accept", "receiverInfo", "notifierInfo", "timeout", "cooldown"}
    if unknown:
        raise BadRequestData(f"Unknown member(s) in endpoint: {', '.join(sorted(unknown))}")
    if "uri" not in raw:
        raise BadRequestData("notification.endpoint.uri is required")
    uri = check_uri(raw["uri"], "notification.endpoint.uri")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise BadRequestData(
            f"notification.endpoint.uri must be an http(s):// or mqtt(s):// URL, got {uri!r}"
        )
    if parts.scheme.lower().startswith("mqtt") and not parts.path.strip("/"):
        raise BadRequestData("An mqtt:// endpoint must name a topic: mqtt://host[:port]/topic")
    accept = raw.get("accept", "application/json")
    if accept == "application/geo+json":
        raise OperationNotSupported("GeoJSON notifications are not supported yet")
    if accept not in ACCEPTS:
        raise BadRequestData(f"endpoint.accept must be one of {', '.join(ACCEPTS)}")
    notifier = _key_values(raw.get("notifierInfo", []), "notifierInfo")
    for key, value in notifier:
        if key == MQTT_QOS and value not in ("0", "1", "2"):
            raise BadRequestData(f"notifierInfo {MQTT_QOS} must be 0, 1 or 2, got {value!r}")
        if key == MQTT_VERSION and value not in MQTT_VERSIONS:
            raise BadRequestData(f"notifierInfo {MQTT_VERSION} must be mqtt3.1.1 or mqtt5.0")
    return Endpoint(uri, accept, _key_values(raw.get("receiverInfo", []), "receiverInfo"), notifier)


def _notification(raw: Any, ctx: Context, base: NotificationParams | None) -> NotificationParams:
    if not isinstance(raw, dict):
        raise BadRequestData("notification must be an object")
    unknown = set(raw) - {"attributes", "format", "showChanges", "sysAttrs", "endpoint"}
    unknown -= NOTIFICATION_READ_ONLY
    if unknown:
        raise BadRequestData(f"Unknown member(s) in notification: {', '.join(sorted(unknown))}")
    if base is None and "endpoint" not in raw:
        raise BadRequestData("notification.endpoint is required")
    changes: dict[str, Any] = {}
    if "endpoint" in raw:
        changes["endpoint"] = _endpoint(raw["endpoint"])
    if "attributes" in raw:
        changes["attributes"] = _names(raw["attributes"], "notification.attributes", ctx)
    if "format" in raw:
        if raw["format"] not in FORMATS:
            raise BadRequestData(
                f"notification.format must be one of {', '.join(FORMATS)}, got {raw['format']!r}"
            )
        changes["format"] = raw["format"]
    if "showChanges" in raw:
        changes["show_changes"] = _bool(raw["showChanges"], "notification.showChanges")
    if "sysAttrs" in raw:
        changes["sys_attrs"] = _bool(raw["sysAttrs"], "notification.sysAttrs")
    if base is None:
        return NotificationParams(**changes)
    return replace(base, **changes)


def _q(raw: Any, ctx: Context, parse_q: Callable[[str, Callable[[str], str]], object]) -> Any:
    text = _string(raw, "q")
    terms: dict[str, str] = {}

    def expand(term: str) -> str:
        terms[term] = ctx.expand(term)
        return terms[term]

    parse_q(text, expand)
    return text, terms


Member = Callable[[Any, Context], dict[str, Any]]


def _members(now: str) -> dict[str, Member]:
    def expires(value: Any, ctx: Context) -> dict[str, Any]:
        at = canonical_datetime(value, "expiresAt")
        if at <= now:
            raise BadRequestData(f"expiresAt {value} is not in the future")
        return {"expires_at": at}

    def triggers(value: Any, ctx: Context) -> dict[str, Any]:
        if not isinstance(value, list) or not value or any(v not in TRIGGERS for v in value):
            raise BadRequestData(f"notificationTrigger must be a non-empty array of {TRIGGERS}")
        return {"triggers": tuple(dict.fromkeys(value))}

    def entities(value: Any, ctx: Context) -> dict[str, Any]:
        if not isinstance(value, list) or not value:
            raise BadRequestData("entities must be a non-empty array")
        return {"entities": tuple(_selector(item, ctx) for item in value)}

    def q(value: Any, ctx: Context) -> dict[str, Any]:
        text, terms = _q(value, ctx, qlang.parse_q)
        return {"q": text, "q_terms": terms}

    def scope_q(value: Any, ctx: Context) -> dict[str, Any]:
        qlang.parse_scope_q(_string(value, "scopeQ"))
        return {"scope_q": value}

    def geo_q(value: Any, ctx: Context) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise BadRequestData("geoQ must be an object {geometry, coordinates, georel}")
        unknown = set(value) - {"geometry", "coordinates", "georel", "geoproperty"}
        if unknown:
            raise BadRequestData(f"Unknown member(s) in geoQ: {', '.join(sorted(unknown))}")
        parsed = geoquery.parse_geo_query(
            value.get("georel"),
            value.get("geometry"),
            value.get("coordinates"),
            value.get("geoproperty"),
            ctx.expand,
        )
        if parsed is None:
            raise BadRequestData("geoQ needs georel, geometry and coordinates")
        return {"geo_q": {**value, GEOPROPERTY_IRI: parsed.geoproperty}}

    def lang(value: Any, ctx: Context) -> dict[str, Any]:
        parse_lang(_string(value, "lang"))
        return {"lang": value}

    return {
        "entities": entities,
        "watchedAttributes": lambda v, c: {"watched_attributes": _names(v, "watchedAttributes", c)},
        "notificationTrigger": triggers,
        "q": q,
        "geoQ": geo_q,
        "scopeQ": scope_q,
        "isActive": lambda v, c: {"is_active": _bool(v, "isActive")},
        "expiresAt": expires,
        "throttling": lambda v, c: {"throttling": _positive(v, "throttling")},
        "timeInterval": lambda v, c: {"time_interval": _positive(v, "timeInterval")},
        "lang": lang,
        "jsonldContext": lambda v, c: {"jsonld_context": check_uri(v, "jsonldContext")},
        "subscriptionName": lambda v, c: {"name": _string(v, "subscriptionName")},
        "description": lambda v, c: {"description": _string(v, "description")},
    }


def _parse_members(body: Mapping[str, Any], ctx: Context, now: str) -> dict[str, Any]:
    members = _members(now)
    unknown = set(body) - set(members) - READ_ONLY - {"id", "type", "notification"}
    if unknown:
        raise BadRequestData(f"Unknown member(s) of a Subscription: {', '.join(sorted(unknown))}")
    if "type" in body and body["type"] != "Subscription":
        raise BadRequestData(f"type must be Subscription, got {body['type']!r}")
    changes: dict[str, Any] = {}
    for name, parse in members.items():
        if name in body:
            changes.update(parse(body[name], ctx))
    return changes


def _checked(sub: Subscription) -> Subscription:
    if not sub.entities and sub.watched_attributes is None:
        raise BadRequestData("A subscription needs entities or watchedAttributes (or both)")
    if sub.time_interval is not None:
        if sub.watched_attributes is not None:
            raise BadRequestData("timeInterval and watchedAttributes cannot be used together")
        if sub.throttling is not None:
            raise BadRequestData("timeInterval and throttling cannot be used together")
        if not sub.entities:
            raise BadRequestData("A periodic subscription (timeInterval) needs entities")
    return sub


def parse_subscription(
    body: Any, ctx: Context, *, now: str, new_id: str, context: Any = None
) -> Subscription:
    """A new subscription from a client's body; BadRequestData names what is wrong."""
    if not isinstance(body, dict):
        raise BadRequestData("A subscription must be a JSON object")
    sub_id = check_uri(body["id"], "Subscription id") if "id" in body else new_id
    if "notification" not in body:
        raise BadRequestData("notification is required")
    changes = _parse_members(body, ctx, now)
    notification = _notification(body["notification"], ctx, None)
    sub = Subscription(
        id=sub_id,
        notification=notification,
        context=context,
        created_at=now,
        modified_at=now,
        **changes,
    )
    return _checked(sub)


def patch_subscription(sub: Subscription, body: Any, ctx: Context, *, now: str) -> Subscription:
    """``sub`` with the members of a client's fragment replaced (5.8.2)."""
    if not isinstance(body, dict) or not body:
        raise BadRequestData("A subscription fragment must be a non-empty JSON object")
    if "id" in body and body["id"] != sub.id:
        raise BadRequestData(f"The fragment's id {body['id']} differs from {sub.id}")
    changes = _parse_members(body, ctx, now)
    if "notification" in body:
        changes["notification"] = _notification(body["notification"], ctx, sub.notification)
    return _checked(replace(sub, modified_at=now, **changes))


# -- storage ---------------------------------------------------------------------------------


def subscription_to_storage(sub: Subscription) -> dict[str, Any]:
    """The JSON document a store keeps for a subscription."""
    n, e = sub.notification, sub.notification.endpoint
    return {
        "id": sub.id,
        "entities": [{"type": s.type, "id": s.id, "idPattern": s.id_pattern} for s in sub.entities],
        "watchedAttributes": list(sub.watched_attributes)
        if sub.watched_attributes is not None
        else None,
        "triggers": list(sub.triggers),
        "q": sub.q,
        "qTerms": dict(sub.q_terms),
        "geoQ": sub.geo_q,
        "scopeQ": sub.scope_q,
        "isActive": sub.is_active,
        "expiresAt": sub.expires_at,
        "throttling": sub.throttling,
        "timeInterval": sub.time_interval,
        "lang": sub.lang,
        "jsonldContext": sub.jsonld_context,
        "name": sub.name,
        "description": sub.description,
        "context": sub.context,
        "createdAt": sub.created_at,
        "modifiedAt": sub.modified_at,
        "notification": {
            "attributes": list(n.attributes) if n.attributes is not None else None,
            "format": n.format,
            "showChanges": n.show_changes,
            "sysAttrs": n.sys_attrs,
            "endpoint": {
                "uri": e.uri,
                "accept": e.accept,
                "receiverInfo": [list(p) for p in e.receiver_info],
                "notifierInfo": [list(p) for p in e.notifier_info],
            },
        },
    }


def subscription_from_storage(doc: Mapping[str, Any]) -> Subscription:
    """Rebuild a subscription from :func:`subscription_to_storage` output."""
    n, e = doc["notification"], doc["notification"]["endpoint"]
    watched = doc.get("watchedAttributes")
    attributes = n.get("attributes")
    return Subscription(
        id=doc["id"],
        entities=tuple(
            EntitySelector(s["type"], s.get("id"), s.get("idPattern")) for s in doc["entities"]
        ),
        watched_attributes=tuple(watched) if watched is not None else None,
        triggers=tuple(doc["triggers"]),
        q=doc.get("q"),
        q_terms=dict(doc.get("qTerms") or {}),
        geo_q=doc.get("geoQ"),
        scope_q=doc.get("scopeQ"),
        is_active=doc["isActive"],
        expires_at=doc.get("expiresAt"),
        throttling=doc.get("throttling"),
        time_interval=doc.get("timeInterval"),
        lang=doc.get("lang"),
        jsonld_context=doc.get("jsonldContext"),
        name=doc.get("name"),
        description=doc.get("description"),
        context=doc.get("context"),
        created_at=doc.get("createdAt"),
        modified_at=doc.get("modifiedAt"),
        notification=NotificationParams(
            endpoint=Endpoint(
                e["uri"],
                e["accept"],
                tuple((k, v) for k, v in e["receiverInfo"]),
                tuple((k, v) for k, v in e["notifierInfo"]),
            ),
            attributes=tuple(attributes) if attributes is not None else None,
            format=n["format"],
            show_changes=n["showChanges"],
            sys_attrs=n["sysAttrs"],
        ),
    )


# -- rendering -------------------------------------------------------------------------------


def render_subscription(
    sub: Subscription, status: DeliveryStatus, ctx: Context, *, now: str, sys_attrs: bool = False
) -> dict[str, Any]:
    """The subscription as a client reads it, names compacted with ``ctx``."""
    out: dict[str, Any] = {"id": sub.id, "type": "Subscription"}
    if sub.name is not None:
        out["subscriptionName"] = sub.name
    if sub.description is not None:
        out["description"] = sub.description
    if sub.entities:
        out["entities"] = [_render_selector(s, ctx) for s in sub.entities]
    if sub.watched_attributes is not None:
        out["watchedAttributes"] = [ctx.compact(a) for a in sub.watched_attributes]
    out["notificationTrigger"] = list(sub.triggers)
    optional = {
        "q": sub.q,
        "geoQ": {k: v for k, v in sub.geo_q.items() if k != GEOPROPERTY_IRI}
        if sub.geo_q is not None
        else None,
        "scopeQ": sub.scope_q,
        "expiresAt": sub.expires_at,
        "throttling": sub.throttling,
        "timeInterval": sub.time_interval,
        "lang": sub.lang,
        "jsonldContext": sub.jsonld_context,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    out["isActive"] = sub.is_active
    out["status"] = sub.status(now)
    out["notification"] = _render_notification(sub.notification, status, ctx)
    if sys_attrs:
        out["createdAt"] = sub.created_at
        out["modifiedAt"] = sub.modified_at
    return out


def _render_selector(selector: EntitySelector, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ctx.compact(selector.type)}
    if selector.id is not None:
        out["id"] = selector.id
    if selector.id_pattern is not None:
        out["idPattern"] = selector.id_pattern
    return out


def _render_notification(
    n: NotificationParams, status: DeliveryStatus, ctx: Context
) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"uri": n.endpoint.uri, "accept": n.endpoint.accept}
    if n.endpoint.receiver_info:
        endpoint["receiverInfo"] = [{"key": k, "value": v} for k, v in n.endpoint.receiver_info]
    if n.endpoint.notifier_info:
        endpoint["notifierInfo"] = [{"key": k, "value": v} for k, v in n.endpoint.notifier_info]
    out: dict[str, Any] = {}
    if n.attributes is not None:
        out["attributes"] = [ctx.compact(a) for a in n.attributes]
    out.update(
        {
            "format": n.format,
            "showChanges": n.show_changes,
            "sysAttrs": n.sys_attrs,
            "endpoint": endpoint,
            "timesSent": status.times_sent,
            "timesFailed": status.times_failed,
        }
    )
    if status.times_sent or status.times_failed:
        out["status"] = "failed" if status.failing else "ok"
    times = {
        "lastNotification": status.last_notification,
        "lastSuccess": status.last_success,
        "lastFailure": status.last_failure,
    }
    out.update({k: v for k, v in times.items() if v is not None})
    return out
