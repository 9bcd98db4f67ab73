"""Render a local page in headless Chromium and report what a person would see go wrong.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (no extra Python packages): the
page is loaded, then every ``<img>`` is checked (``complete`` with a non-zero natural width),
and console errors, uncaught exceptions and browser log errors (e.g. a missing file) are
collected. Chromium is Debian's ``chromium`` package (``apt-get install -y chromium``); tests
skip with that hint where it is absent.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "headless Chromium not found: apt-get install -y chromium (Debian package)"


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What loading the page gave."""

    images: list[dict[str, Any]] = field(default_factory=list)  # src (cut), complete, width
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, log errors

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not i["complete"] or i["width"] == 0]


class _Pipe:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def recv(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, msg in enumerate(self.events):
            if msg.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = self.recv(deadline)
            if msg.get("method") == method:
                return msg
            self.events.append(msg)


def _high_fd(fd: int) -> int:
    """A copy of ``fd`` numbered >= 10, so that ``3<&N 4>&M`` cannot clash with fds 3 and 4."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


_IMAGES_JS = (
    "Array.from(document.images).map(i => ({src: i.getAttribute('src').slice(0, 80), "
    "complete: i.complete, width: i.naturalWidth}))"
)


def check_page(page: Path, timeout: float = 60) -> PageCheck:
    """Load ``page`` (a local HTML file) in headless Chromium and check it (see module doc)."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(INSTALL_HINT)
    to_chrome_r, to_chrome_w = (_high_fd(fd) for fd in os.pipe())
    from_chrome_r, from_chrome_w = (_high_fd(fd) for fd in os.pipe())
    with tempfile.TemporaryDirectory() as profile, open(Path(profile) / "log", "w+b") as log:
        args = [
            "--headless",
            "--no-sandbox",  # root in CI containers
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # the browser reads DevTools messages on fd 3 and writes on fd 4
        shell = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        proc = subprocess.Popen(
            ["bash", "-c", shell, chromium, *args],  # dash takes single-digit fds only
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        pipe = _Pipe(from_chrome_r, to_chrome_w)
        try:
            targets = pipe.call("Target.getTargets", timeout=timeout)["targetInfos"]
            target = next(t["targetId"] for t in targets if t["type"] == "page")
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.events.clear()  # about:blank's events
            pipe.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            found = pipe.call(
                "Runtime.evaluate", {"expression": _IMAGES_JS, "returnByValue": True}, session
            )
            check = PageCheck(images=found["result"]["value"])
            check.errors = _errors(pipe.events)
            return check
        except (RuntimeError, TimeoutError) as err:
            log.seek(0)
            raise RuntimeError(
                f"{err}; Chromium said:\n{log.read()[-3000:].decode(errors='replace')}"
            ) from err
        finally:
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for msg in events:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value")) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            out.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out
