"""Serving processes: the app of one process, and how several worker processes get theirs.

With ``workers`` above 1, uvicorn starts that many processes sharing the listening socket; each
imports :data:`WORKER_APP` and builds its own app (its own connections to PostgreSQL, notification
delivery and MQTT client) from the settings the parent handed down.
"""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI

from burgo.config import Settings

WORKER_APP = "burgo.serve:worker_app"
# Not BURGO_*: that prefix is for settings, and this carries all of them at once.
_HANDED_DOWN = "_BURGO_WORKER_SETTINGS"


def build_app(settings: Settings) -> FastAPI:
    """The app of one serving process."""
    from burgo.app import create_app

    app = create_app(settings)
    _tune_garbage_collector()
    return app


def hand_down(settings: Settings) -> None:
    """Pass the settings to the worker processes about to start (through their environment,
    which only the same user can read)."""
    os.environ[_HANDED_DOWN] = settings.model_dump_json()


def worker_app() -> FastAPI:
    """The app of one worker process, from the settings its parent handed down."""
    from burgo.logs import configure_logging

    settings = Settings.model_validate_json(os.environ[_HANDED_DOWN])
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return build_app(settings)


def _tune_garbage_collector() -> None:
    """Leave what start-up built (modules, the app) out of every later garbage collection, and
    collect the oldest generation seldom."""
    # It lives as long as the process; big batches allocate enough to trigger full collections,
    # which would walk all of it again each time (bench/RESULTS.md, batch operations).
    gc.freeze()
    # A batch's parsed entities live until its write commits, so every young collection passes
    # them on to the oldest generation, and with the default threshold each few dozen young
    # collections then walked the whole heap again: most of the collector's time in a batch
    # create. Full collections now wait for a thousand middle ones (about 7 million objects
    # allocated); the young generations keep their defaults, so cycles still go soon.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1000)
