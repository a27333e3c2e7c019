"""/ngsi-ld/v1/entityOperations: batch create, upsert, update, merge and delete (ETSI GS CIM 009,
5.6.7-5.6.10 and 5.6.20; HTTP binding 6.14-6.17 and 6.31).

Each entity of a batch succeeds or fails on its own, as if it were a request of its own, in the
order given: a later entry with the same id sees what an earlier one did. When every entity
succeeds the answer is 201 (created ids) or 204; otherwise 207 with a BatchOperationResult.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from burgo.api.http import (
    JSON,
    JSON_LD,
    MERGE_PATCH,
    TENANT_HEADER,
    json_response,
    link_context_url,
    media_type,
    query_list,
    read_json,
    tenant_of,
)
from burgo.api.services import Services, services
from burgo.ngsild.context import Context
from burgo.ngsild.errors import AlreadyExists, BadRequestData, NgsiLdError
from burgo.ngsild.model import Entity, attribute_to_storage
from burgo.ngsild.parse import Fragment, check_uri, parse_entity, parse_fragment
from burgo.ngsild.update import (
    UpdateResult,
    append_attrs,
    create_entity,
    merge_entity,
    replace_entity,
)
from burgo.store.batch import EntityWrite, WriteOutcome

router = APIRouter(prefix="/ngsi-ld/v1/entityOperations", tags=["NGSI-LD batch operations"])

# Batches up to this size are parsed on the event loop; larger ones on a worker thread, so one
# big batch does not stall every other request while it is parsed.
_PARSE_INLINE = 64

# Builds one entity's write from its body and @context; raises NgsiLdError for a bad entity.
Builder = Callable[[dict[str, Any], Context], EntityWrite]


@dataclass(slots=True)
class _Entry:
    """One member of the batch: its id, its body and @context, or why it cannot be written."""

    entity_id: str
    data: Any
    context: Any = None
    error: NgsiLdError | None = None


def _tenant_headers(request: Request) -> dict[str, str]:
    tenant = request.headers.get(TENANT_HEADER)
    return {TENANT_HEADER: tenant} if tenant else {}


def _options(request: Request, allowed: tuple[str, ...]) -> set[str]:
    options = set(query_list(request, "options") or ())
    unknown = options - set(allowed)
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise BadRequestData(
            f"Unknown value(s) in options: {', '.join(sorted(unknown))}; known here: {known}"
        )
    return options


async def _read_array(request: Request, svc: Services, *, patch: bool = False) -> list[Any]:
    allowed = (JSON, JSON_LD, MERGE_PATCH) if patch else (JSON, JSON_LD)
    data = await read_json(request, svc.settings.max_body_bytes, allowed)
    if not isinstance(data, list) or not data:
        raise BadRequestData("A batch body must be a non-empty JSON array")
    for index, item in enumerate(data):
        if item is None:
            raise BadRequestData(f"Item {index} of the batch is null")
    return data


async def _entries(request: Request, svc: Services, *, patch: bool = False) -> list[_Entry]:
    """The batch's entities with their @context resolved (once per distinct @context)."""
    tenant_of(request)  # a bad tenant header fails the request before its body is read
    data = await _read_array(request, svc, patch=patch)
    link = link_context_url(request)
    ld = media_type(request) == JSON_LD
    if ld and link is not None:
        raise BadRequestData(
            "With application/ld+json the @context goes in each entity, not in a Link header"
        )
    entries = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise BadRequestData(f"Item {index} of the batch is not a JSON object")
        entity_id = item.get("id", item.get("@id"))
        if not isinstance(entity_id, str):
            raise BadRequestData(f"Item {index} of the batch has no id")
        entry = _Entry(entity_id, item, link)
        if ld:
            entry.context = item.get("@context")
            if entry.context is None:
                entry.error = BadRequestData("An application/ld+json entity needs an @context")
        elif "@context" in item:
            entry.error = BadRequestData(
                "An application/json body cannot carry an @context; send it in a Link header "
                "or use application/ld+json"
            )
        entries.append(entry)
    await _resolve(svc, entries)
    return entries


async def _resolve(svc: Services, entries: list[_Entry]) -> None:
    resolved: dict[Any, Context | NgsiLdError] = {}
    for entry in entries:
        if entry.error is not None:
            continue
        key = (
            entry.context
            if entry.context is None or isinstance(entry.context, str)
            else orjson.dumps(entry.context, option=orjson.OPT_SORT_KEYS)
        )
        if key not in resolved:
            try:
                resolved[key] = await svc.contexts.resolve(entry.context)
            except NgsiLdError as exc:
                resolved[key] = exc
        found = resolved[key]
        if isinstance(found, NgsiLdError):
            entry.error = found
        else:
            entry.context = found


def _build_all(entries: list[_Entry], build: Builder) -> list[EntityWrite | NgsiLdError]:
    built: list[EntityWrite | NgsiLdError] = []
    for entry in entries:
        if entry.error is not None:
            built.append(entry.error)
            continue
        try:
            built.append(build(entry.data, entry.context))
        except NgsiLdError as exc:
            built.append(exc)
    return built


async def _run(
    request: Request, svc: Services, entries: list[_Entry], build: Builder
) -> list[WriteOutcome]:
    """Build every entity's write, store the good ones, and give one outcome per entry."""
    if len(entries) <= _PARSE_INLINE:
        built = _build_all(entries, build)
    else:
        built = await asyncio.to_thread(_build_all, entries, build)
    writes = [item for item in built if isinstance(item, EntityWrite)]
    stored = iter(await svc.store.write_entities(tenant_of(request), writes) if writes else [])
    return [
        next(stored) if isinstance(item, EntityWrite) else WriteOutcome(entry.entity_id, error=item)
        for entry, item in zip(entries, built, strict=True)
    ]


def _result(
    request: Request, outcomes: list[WriteOutcome], *, created_status: bool = False
) -> Response:
    """201 with the created ids, 204, or 207 with a BatchOperationResult."""
    headers = _tenant_headers(request)
    success = list(dict.fromkeys(o.entity_id for o in outcomes if o.ok))
    errors = [
        {"entityId": o.entity_id, "error": o.error.to_problem()}
        for o in outcomes
        if o.error is not None
    ]
    if errors:
        return json_response({"success": success, "errors": errors}, status=207, headers=headers)
    created = list(dict.fromkeys(o.entity_id for o in outcomes if o.created))
    if created_status or created:
        return json_response(created, status=201, headers=headers)
    return Response(status_code=204, headers=headers)


def _not_overwritten(outcome: WriteOutcome) -> WriteOutcome:
    """An append that left attributes alone (noOverwrite) reported as that entity's error."""
    result = outcome.result
    if outcome.ok and isinstance(result, UpdateResult) and result.not_updated:
        names = ", ".join(dict.fromkeys(name for name, _ in result.not_updated))
        error = AlreadyExists(
            f"Attributes not overwritten (options=noOverwrite): {names}",
            updated=result.updated,
        )
        return WriteOutcome(outcome.entity_id, result=result, error=error)
    return outcome


def fragment_of(entity: Entity) -> Fragment:
    """A parsed entity as the fragment that Append Attributes takes."""
    return Fragment(
        attrs={
            name: [attribute_to_storage(a) for a in instances]
            for name, instances in entity.attrs.items()
        },
        names={name: name for name in entity.attrs},
        types=entity.types,
        scope=entity.scope or None,
    )


@router.post("/create", status_code=201, summary="Create a batch of entities")
async def batch_create(request: Request) -> Response:
    """Create each entity; those that exist already (or are invalid) are reported in a 207."""
    svc = services(request)
    _options(request, ())
    entries = await _entries(request, svc)
    now = svc.now()

    def build(data: dict[str, Any], ctx: Context) -> EntityWrite:
        entity = parse_entity(data, ctx, now=now)
        return EntityWrite(entity.id, create=entity)

    return _result(request, await _run(request, svc, entries, build), created_status=True)


@router.post("/upsert", status_code=201, summary="Create or replace/update a batch of entities")
async def batch_upsert(request: Request) -> Response:
    """Create the entities that do not exist; replace (``options=replace``, the default) or
    update (``options=update``: append, overwriting) those that do."""
    svc = services(request)
    options = _options(request, ("replace", "update"))
    if options == {"replace", "update"}:
        raise BadRequestData("options=replace and options=update exclude each other")
    update = "update" in options
    entries = await _entries(request, svc)
    now = svc.now()

    def build(data: dict[str, Any], ctx: Context) -> EntityWrite:
        if update:
            parsed = parse_entity(data, ctx)
            fragment = fragment_of(parsed)

            def change(current: Entity) -> tuple[Entity, None]:
                return append_attrs(current, fragment, now)[0], None

            return EntityWrite(parsed.id, create=create_entity(parsed, now), change=change)
        created = parse_entity(data, ctx, now=now)

        def replace(current: Entity) -> tuple[Entity, None]:
            return replace_entity(current, created, now), None

        return EntityWrite(created.id, create=created, change=replace)

    return _result(request, await _run(request, svc, entries, build))


@router.post("/update", status_code=204, summary="Update a batch of entities")
async def batch_update(request: Request) -> Response:
    """Append each entity's attributes to the stored entity, overwriting existing ones unless
    ``options=noOverwrite``; an entity that does not exist is reported in a 207."""
    svc = services(request)
    overwrite = "noOverwrite" not in _options(request, ("noOverwrite",))
    entries = await _entries(request, svc)
    now = svc.now()

    def build(data: dict[str, Any], ctx: Context) -> EntityWrite:
        entity_id = check_uri(data.get("id", data.get("@id")), "Entity id")
        fragment = parse_fragment(data, ctx, patch=False)

        def change(current: Entity) -> tuple[Entity, UpdateResult]:
            return append_attrs(current, fragment, now, overwrite=overwrite)

        return EntityWrite(entity_id, change=change)

    outcomes = await _run(request, svc, entries, build)
    return _result(request, [_not_overwritten(o) for o in outcomes])


@router.post("/merge", status_code=204, summary="Merge a batch of entity fragments")
async def batch_merge(request: Request) -> Response:
    """Merge each fragment into its stored entity (NGSI-LD Null deletes), as PATCH /entities/{id}
    does; an entity that does not exist is reported in a 207."""
    svc = services(request)
    _options(request, ())
    entries = await _entries(request, svc, patch=True)
    now = svc.now()

    def build(data: dict[str, Any], ctx: Context) -> EntityWrite:
        entity_id = check_uri(data.get("id", data.get("@id")), "Entity id")
        fragment = parse_fragment(data, ctx, patch=True)

        def change(current: Entity) -> tuple[Entity, None]:
            return merge_entity(current, fragment, now), None

        return EntityWrite(entity_id, change=change)

    return _result(request, await _run(request, svc, entries, build))


def _delete(current: Entity) -> tuple[None, None]:
    return None, None


@router.post("/delete", status_code=204, summary="Delete a batch of entities")
async def batch_delete(request: Request) -> Response:
    """Delete the entities named by an array of ids; unknown ones are reported in a 207."""
    svc = services(request)
    tenant = tenant_of(request)
    _options(request, ())
    ids = await _read_array(request, svc)
    entries = []
    for index, entity_id in enumerate(ids):
        if not isinstance(entity_id, str):
            raise BadRequestData(f"Item {index} of the batch is not an entity id (a string)")
        entry = _Entry(entity_id, None)
        try:
            check_uri(entity_id, "Entity id")
        except NgsiLdError as exc:
            entry.error = exc
        entries.append(entry)

    writes = [EntityWrite(e.entity_id, change=_delete) for e in entries if e.error is None]
    stored = iter(await svc.store.write_entities(tenant, writes) if writes else [])
    outcomes = [
        next(stored) if e.error is None else WriteOutcome(e.entity_id, error=e.error)
        for e in entries
    ]
    return _result(request, outcomes)
