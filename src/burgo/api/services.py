"""What every request handler reaches: settings, the store, the @context resolver, the clock."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from burgo.api.context_resolver import ContextResolver
from burgo.clock import Clock
from burgo.config import Settings
from burgo.ngsild.times import format_datetime
from burgo.store.base import Store


@dataclass(frozen=True, slots=True)
class Services:
    """The application's shared parts, built once by ``create_app``."""

    settings: Settings
    store: Store
    contexts: ContextResolver
    clock: Clock

    def now(self) -> str:
        """The current time in canonical NGSI-LD form."""
        return format_datetime(self.clock.now())


def services(request: Request) -> Services:
    """The services of the application serving ``request``."""
    found: Services = request.app.state.services
    return found
