"""Browser tests: Playwright driving Debian's headless Chromium against the live server.

Chromium comes from the system (``/usr/bin/chromium``, or ``CRM_CHROMIUM``); Playwright
never downloads a browser here. Without it the tests skip with the reason, and fail
under ``CRM_REQUIRE_SERVICES`` (CI), like every other missing service.

Screenshots go to ``CRM_SCREENSHOT_DIR`` when it is set (``docs/screenshots`` for the
README), else to the test's temporary folder, so that the same code runs either way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from tests.services import unavailable

# Playwright's sync API runs an event loop in the test's thread; the ORM calls a test
# makes between browser steps are still plain blocking calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
# The machine has no outside network: Chromium's own background traffic only fails.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(
            f"needs Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set CRM_CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extras install it
        unavailable("needs the playwright package (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class PageWatch:
    """What a page did that a test may want to refuse: dialogs, errors, requests."""

    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def foreign_requests(self, base_url: str) -> list[str]:
        return [
            url
            for url in self.requests
            if not (url.startswith(base_url) or url.startswith(("data:", "about:", "blob:")))
        ]


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def browser_context(browser, live_server, watch: PageWatch) -> Iterator:
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.on("request", lambda request: watch.requests.append(request.url))
    yield context
    context.close()


@pytest.fixture
def page(browser_context, watch: PageWatch) -> Iterator:
    page = browser_context.new_page()

    def on_dialog(dialog) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            watch.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    yield page
    page.close()


@pytest.fixture
def sign_in(browser_context, live_server) -> Callable:
    """Sign ``user`` in by giving the browser a session cookie (no form round trip);
    the sign-in form itself has its own test."""

    def sign_in(user) -> None:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        browser_context.clear_cookies()
        browser_context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": session.session_key,
                    "url": live_server.url,
                }
            ]
        )

    return sign_in


@pytest.fixture
def screenshot(tmp_path) -> Callable:
    """``screenshot(page, "mail-list")`` writes ``<dir>/mail-list.png`` (full page)."""
    folder = Path(os.environ.get("CRM_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        return path

    return take
