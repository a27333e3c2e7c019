"""Turns the @context a request names into an active context, fetching and caching what it needs.

Where a context document comes from, in order: the NGSI-LD core context and the Smart Data Models
contexts shipped in the package; contexts hosted by this broker (``/jsonldContexts``); contexts
cached from earlier downloads; and last, a download with a timeout.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import httpx
import orjson

from burgo.ngsild.context import (
    Context,
    MissingContext,
    core_context,
    is_core_context_url,
    process_context,
)
from burgo.ngsild.errors import BadRequestData, LdContextNotAvailable
from burgo.ngsild.times import format_datetime
from burgo.store.base import Store, StoredContext

log = logging.getLogger(__name__)

HOSTED_PATH = "/ngsi-ld/v1/jsonldContexts/"
KIND_HOSTED = "Hosted"
KIND_CACHED = "Cached"
KIND_IMPLICIT = "ImplicitlyCreated"
MAX_CONTEXT_BYTES = 1024 * 1024

_SDM_URL = re.compile(
    r"^https://(raw\.githubusercontent\.com/smart-data-models/dataModel\.([A-Za-z]+)/"
    r"(master|main)/context\.jsonld|smart-data-models\.github\.io/dataModel\.([A-Za-z]+)/"
    r"context\.jsonld)$"
)


def shipped_context(url: str) -> Any | None:
    """A Smart Data Models @context shipped with Burgo for a well-known URL, if there is one."""
    match = _SDM_URL.match(url)
    if match is None:
        return None
    return _shipped_domain(match[2] or match[4])


@lru_cache(maxsize=64)
def _shipped_domain(domain: str) -> Any | None:
    entry = resources.files("burgo.data").joinpath("sdm", f"{domain}.jsonld")
    if not entry.is_file():
        return None
    return orjson.loads(entry.read_bytes())


def hosted_id(url: str) -> str | None:
    """The local id of a context this broker hosts, given the URL it is served at."""
    _, sep, tail = url.partition(HOSTED_PATH)
    if sep and tail and "/" not in tail and "?" not in tail:
        return tail
    return None


class ContextResolver:
    """Active contexts for requests, with remote documents fetched once and cached.

    >>> resolver = ContextResolver(store, httpx.AsyncClient(), now=clock.now)  # doctest: +SKIP
    >>> ctx = await resolver.resolve("https://example.org/context.jsonld")  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        *,
        now: Callable[[], datetime],
        timeout: float = 5.0,
        cache_size: int = 256,
    ) -> None:
        self._store = store
        self._http = http
        self._now = now
        self._timeout = timeout
        self._cache_size = cache_size
        self._active: OrderedDict[str, Context] = OrderedDict()
        self.usage: dict[str, tuple[int, str]] = {}

    def forget(self) -> None:
        """Drop every processed context (after a stored one changed)."""
        self._active.clear()

    async def resolve(self, local: Any) -> Context:
        """The active context for a request's @context (None: the core context alone)."""
        if local is None or (isinstance(local, str) and is_core_context_url(local)):
            return core_context()
        key = (
            local
            if isinstance(local, str)
            else orjson.dumps(local, option=orjson.OPT_SORT_KEYS).decode()
        )
        active = self._active.get(key)
        if active is not None:
            self._active.move_to_end(key)
            return active
        active = await self.process(local)
        self._active[key] = active
        if len(self._active) > self._cache_size:
            self._active.popitem(last=False)
        return active

    async def process(self, local: Any) -> Context:
        """Process ``local``, fetching the remote contexts it needs; downloads are kept only
        when the whole context turns out valid."""
        documents: dict[str, Any] = {}
        downloaded: dict[str, Any] = {}
        while True:
            try:
                active = process_context(local, documents)
                break
            except MissingContext as missing:
                url = missing.url
                documents[url] = await self._document(url, downloaded)
        for url, document in downloaded.items():
            await self._cache(url, document)
        return active

    def _count_use(self, context_id: str) -> None:
        hits, _ = self.usage.get(context_id, (0, ""))
        self.usage[context_id] = (hits + 1, format_datetime(self._now()))

    async def document(self, url: str) -> Any:
        """The context document at ``url``, from the package, the store or the network."""
        downloaded: dict[str, Any] = {}
        document = await self._document(url, downloaded)
        for fetched, fetched_document in downloaded.items():
            await self._cache(fetched, fetched_document)
        return document

    async def _document(self, url: str, downloaded: dict[str, Any]) -> Any:
        shipped = shipped_context(url)
        if shipped is not None:
            return shipped
        stored = await self._stored(url)
        if stored is not None:
            return stored.document
        document = await self.download(url)
        downloaded[url] = document
        return document

    async def _stored(self, url: str) -> StoredContext | None:
        local_id = hosted_id(url)
        stored = await self._store.get_context(local_id) if local_id else None
        if stored is None or stored.kind == KIND_CACHED:
            stored = await self._store.get_context(url)
        if stored is not None:
            self._count_use(stored.id)
        return stored

    async def _cache(self, url: str, document: Any) -> None:
        if await self._store.get_context(url) is not None:
            return
        await self._store.put_context(
            StoredContext(
                id=str(uuid.uuid4()),
                url=url,
                kind=KIND_CACHED,
                document=document,
                created_at=format_datetime(self._now()),
            )
        )

    async def download(self, url: str) -> Any:
        """Fetch a remote @context document; LdContextNotAvailable when it cannot be had."""
        if not url.startswith(("http://", "https://")):
            raise BadRequestData(f"@context {url!r} is neither an object nor an http(s) URL")
        try:
            response = await self._http.get(
                url,
                timeout=self._timeout,
                headers={"Accept": "application/ld+json, application/json;q=0.9"},
                follow_redirects=True,
            )
        except httpx.HTTPError as exc:
            log.warning("Cannot fetch @context %s: %s", url, exc)
            raise LdContextNotAvailable(
                f"The @context at {url} cannot be retrieved: {exc or type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise LdContextNotAvailable(
                f"The @context at {url} cannot be retrieved: HTTP {response.status_code}"
            )
        if len(response.content) > MAX_CONTEXT_BYTES:
            raise BadRequestData(f"The @context at {url} is larger than {MAX_CONTEXT_BYTES} bytes")
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise BadRequestData(f"The @context at {url} is not valid JSON") from exc
        if not isinstance(document, dict) or "@context" not in document:
            raise BadRequestData(f"The document at {url} is not a JSON-LD @context")
        return document
