"""Debian's Chromium, headless, driven by Playwright (which never downloads a browser here).

The flags are the ones this kind of machine needs (``/work/.library/env/machines``):
no sandbox as root, no GPU, and no background networking, which the closed network
refuses. Each launch gets a new empty profile. Screenshots go to ``tests/artifacts/``
(git-ignored), kept after the run for people to look at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (apt-get install chromium)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 900  # the viewport: a laptop screen


def require_chromium() -> None:
    """Skip without Chromium, except where it must be there (CI sets the variable)."""
    if CHROMIUM.exists() and shutil.which("chromium"):
        return
    if os.environ.get("RETRAIN_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")


@dataclass
class Watched:
    """A page and everything it said: console errors and warnings, uncaught exceptions,
    failed or refused requests, and dialogs (an alert would mean a script ran)."""

    page: Any
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium context with a new empty profile."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        try:
            yield context
        finally:
            context.close()


def watch(context: Any) -> Watched:
    """A new page of ``context`` with everything it reports recorded."""
    page = context.new_page()
    seen = Watched(page)
    page.on(
        "console",
        lambda m: (
            seen.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: seen.problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: seen.problems.append(f"request failed: {r.url}"))
    page.on(
        "response",
        lambda r: seen.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )

    def dismiss(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return seen


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG in ``tests/artifacts/``; its path is printed for the reader."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
