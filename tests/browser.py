"""A headless Chromium that opens a page from disk and tells what a person would see: the
requests it made, the errors it logged, the text of an element, a screenshot. It speaks the
DevTools protocol over --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4), so the
suite needs no package beyond Debian's ``chromium``.

``NANTOOLS_REQUIRE_BROWSER=1`` (the image's test stage) makes a missing browser a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import List, Optional

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
]


def chromium() -> str:
    """The browser's path; skips the test where there is none, fails where one is required."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no chromium here (apt-get install chromium)"
        if os.environ.get("NANTOOLS_REQUIRE_BROWSER") == "1":
            pytest.fail(message + ", and NANTOOLS_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return found


class Page:
    """What loading one file showed: ``requests`` (every URL the page asked for, itself
    included), ``errors`` (console errors, exceptions, log entries at level error)."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.requests: List[str] = []
        self.errors: List[str] = []

    def evaluate(self, expression: str):
        reply = self.browser.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session
        )
        return reply["result"].get("value")

    def screenshot(self, path: str) -> None:
        width = self.evaluate("document.documentElement.scrollWidth")
        height = min(self.evaluate("document.documentElement.scrollHeight"), 12000)
        reply = self.browser.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
            self.session,
        )
        with open(path, "wb") as f:
            f.write(base64.b64decode(reply["data"]))


class Browser:
    """``with Browser() as b: page = b.open(path)``."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._folder = tempfile.mkdtemp(prefix="nantools-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # the browser reads commands on fd 3 and answers on fd 4
            # (by way of fds above both, so that neither dup2 overwrites the other's source)
            high_r, high_w = os.dup2(to_chrome_r, 100), os.dup2(from_chrome_w, 101)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self._process = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._folder}", "about:blank"],
            preexec_fn=fds,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self._events: List[dict] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self._process.kill()
        self._process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._folder, ignore_errors=True)

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            if time.time() > deadline or self._process.poll() is not None:
                raise AssertionError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], 0.5)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed its pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: Optional[dict] = None, session: Optional[str] = None):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def _wait_for(self, method: str, session: str, page: Page) -> None:
        deadline = time.time() + self.timeout
        while True:
            event = self._events.pop(0) if self._events else self._read(deadline)
            self._note(event, page)
            if event.get("method") == method and event.get("sessionId") == session:
                return

    @staticmethod
    def _note(event: dict, page: Page) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            page.errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            page.errors.append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            page.errors.append(params["entry"].get("text", ""))

    def open(self, path: str) -> Page:
        """Load ``path`` in a new tab and wait until it has loaded (and a moment more, for
        anything it would fetch late)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        url = "file://" + os.path.abspath(path)
        self.call("Page.navigate", {"url": url}, session)
        self._wait_for("Page.loadEventFired", session, page)
        page.evaluate("new Promise(r => setTimeout(r, 500))")
        for event in self._events:
            self._note(event, page)
        self._events.clear()
        return page
