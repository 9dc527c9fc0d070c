"""A real headless Chromium for page tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download reaches the network, so we point it at the system
browser (``/usr/bin/chromium``, installed by the Makefile's test target). A missing browser
is a failure, not a skip: CI must run these tests, and a silent skip would hide that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

#: Flags for a closed network: without the background-networking ones Chromium keeps
#: trying to reach Google's hosts at every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Let <audio>.play() start without a user gesture, so a test can check playback.
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    path = os.environ.get("EARMARK_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser"
    )
    if not path:
        raise RuntimeError(
            "no Chromium found: install Debian's 'chromium' (make test does) or set EARMARK_CHROMIUM"
        )
    return path


@contextlib.contextmanager
def browser_page():
    """Yield a Playwright ``Page`` in a fresh headless Chromium with an empty profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="earmark-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()
