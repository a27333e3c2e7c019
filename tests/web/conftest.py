"""Fixtures of the dashboard tests: a real `burgo serve` on a free loopback port with a small town
seeded through the public API, and real Chromium (Debian `chromium`) driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.services import free_port, require, wait_for_port
from tests.web.town import CHIRPSTACK_SECRET, TTS_SECRET, Town, seed_town

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
"""Where the browser tests keep their screenshots (ignored by git)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real `burgo serve` on its own SQLite file."""
    workdir = tmp_path_factory.mktemp("burgo-serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURGO_")}
    env["BURGO_SQLITE_SYNCHRONOUS"] = "NORMAL"
    env["BURGO_LORAWAN_TTS_SECRET"] = TTS_SECRET
    env["BURGO_LORAWAN_CHIRPSTACK_SECRET"] = CHIRPSTACK_SECRET
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "burgo", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--db", str(workdir / "burgo.db"), "--config", str(workdir / "none.toml")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
    )  # fmt: skip
    try:
        wait_for_port(port, deadline=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def town(server: str) -> Town:
    """The small town, seeded into the server through its HTTP API."""
    with httpx.Client(base_url=server, timeout=30) as client:
        return seed_town(client)


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    """Playwright, started once for the browsers a test module opens."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(
    driver: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """Headless Chromium with a new, empty profile; downloads accepted."""
    executable = require("chromium", "chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    context = driver.chromium.launch_persistent_context(
        str(profile),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        accept_downloads=True,
        viewport={"width": 1280, "height": 860},
        locale="en-GB",
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A fresh tab (no cookies from earlier tests) that records the page's errors."""
    browser.clear_cookies()
    tab = browser.new_page()
    watch_errors(tab)
    yield tab
    tab.close()


@pytest.fixture
def phone(driver: Playwright, tmp_path: Path) -> Iterator[Page]:
    """A tab of headless Chromium as a phone shows it: 390x844, touch, no mouse; errors kept."""
    executable = require("chromium", "chromium")
    context = driver.chromium.launch_persistent_context(
        str(tmp_path / "chromium-phone"),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        locale="pt-PT",
    )
    try:
        tab = context.new_page()
        watch_errors(tab)
        yield tab
    finally:
        context.close()


def watch_errors(tab: Page) -> None:
    """Record the page's script errors, failed requests and error answers in ``tab.errors``."""
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    tab.on(
        "response",
        lambda answer: (
            errors.append(f"{answer.status}: {answer.url}") if answer.status >= 400 else None
        ),
    )
    tab.errors = errors  # type: ignore[attr-defined]


def screenshot(page: Page, name: str, **options: Any) -> Path:
    """Keep a screenshot of the page under test-artifacts/dashboard/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
