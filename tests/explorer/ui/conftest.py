"""Browser fixtures for the UI tests: Debian's Chromium driven by Playwright (never a downloaded browser),
a real server process (tests/live.py), a screenshot of every test under tests/artifacts/ui/, and axe-core."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
AXE = ROOT / "static" / "vendor" / "axe-core-4.14.1.min.js"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _orm_beside_playwright(request, monkeypatch):
    """Playwright's sync API keeps its event loop running in this thread once the session's browser started,
    and Django's async-safety check takes that for async code: a database test of this folder that runs
    after a browser test would fail with SynchronousOnlyOperation. Nothing runs concurrently here, so
    Django's documented escape hatch is set, for the database tests only (the live servers are processes of
    their own, started without it)."""
    if request.node.get_closest_marker("django_db"):
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def page(browser, request):
    """A fresh page (light theme, desktop size); its screenshot is saved when the test ends."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()


def shot(page, name: str) -> None:
    """An extra screenshot in the middle of a flow."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """axe-core's violations of the given impacts on the current page (WCAG 2.x A/AA rules and best practices)."""
    page.wait_for_load_state("domcontentloaded")     # a page still arriving has no <head> to add axe to
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "targets": [n["target"] for n in v["nodes"]][:5]} for v in result if v["impact"] in impacts]
