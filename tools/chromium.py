"""Headless Chromium driven over the DevTools protocol (CDP) on a pipe, with the standard library
only: the browser tests (``tests/test_web.py``) and ``tools/bench_web.py`` open the page in web/
with it.

    with chromium.serve_web() as url, chromium.Browser() as browser:
        page = browser.open(url + "?example=hand1.png")
        page.wait_for("document.body.dataset.state === 'done'")
        result = page.evaluate("window.lgh.result")

``--remote-debugging-pipe`` makes the browser read commands from its fd 3 and write answers to its
fd 4, JSON messages ended by a NUL byte. ``find_chromium`` looks for the distribution's browser
(Debian's ``chromium``); no browser is downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(ROOT, "web")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of an installed Chromium (``$CHROMIUM`` first), or None."""
    candidates = [os.environ.get("CHROMIUM")] + [shutil.which(name) for name in BROWSERS]
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def web_ready() -> str | None:
    """None when web/ can be served (``npm ci`` has run there), else why not."""
    needed = [os.path.join(WEB, "node_modules", "@litertjs", "core", "dist", "index.js"),
              os.path.join(WEB, "assets", "model_float32.tflite")]
    missing = [os.path.relpath(p, ROOT) for p in needed if not os.path.isfile(p)]
    return f"run `npm ci` in web/ first (missing {', '.join(missing)})" if missing else None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, *args):  # no request log on stderr
        pass

    def end_headers(self):
        if getattr(self.server, "isolated", False):  # cross-origin isolation: threads (SharedArrayBuffer)
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


@contextlib.contextmanager
def serve_web(directory: str = WEB, isolated: bool = False):
    """Serves ``directory`` on 127.0.0.1 (a free port) in a thread; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.isolated = isolated
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class CDPError(RuntimeError):
    pass


class Page:
    """One tab: ``evaluate`` (awaits promises, returns values), ``wait_for`` a condition."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, timeout: float = 60.0, **params):
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 60.0):
        answer = self.send("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"{expression[:80]!r} threw: {text}")
        return answer["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 30.0, poll: float = 0.05):
        """Polls ``condition`` (a JS expression) until it is truthy; returns its value."""
        end = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return ({condition}); }} catch (error) {{ return false; }} }})()"
        while True:
            value = self.evaluate(guarded)
            if value:
                return value
            if time.monotonic() > end:
                state = self.evaluate("[document.body && document.body.dataset.state, "
                                      "(document.getElementById('message') || {}).textContent]")
                raise TimeoutError(f"{condition!r} not true after {timeout:g} s (page state, message: {state})")
            time.sleep(poll)

    def screenshot(self, path: str, width: int, height: int):
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        import base64

        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


class Browser:
    """A headless Chromium process; ``open(url)`` gives a :class:`Page`. ``flags``: extra switches
    (e.g. the fake camera's)."""

    def __init__(self, flags=(), executable: str | None = None):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise FileNotFoundError("no Chromium (apt-get install chromium)")
        self.flags = list(flags)
        self.profile = None
        self.process = None
        self.next_id = 0
        self.buffer = b""

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="lgh_chromium_")
        commands_read, commands_write = os.pipe()
        answers_read, answers_write = os.pipe()

        def child_fds():  # the browser reads fd 3 and writes fd 4 (moved up first: they may be 3 or 4)
            import fcntl

            high_read = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            high_write = fcntl.fcntl(answers_write, fcntl.F_DUPFD, 10)
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.process = subprocess.Popen(
            [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={self.profile}", *self.flags, "about:blank"],
            pass_fds=(3, 4), preexec_fn=child_fds,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(answers_write)
        self.writer = os.fdopen(commands_write, "wb", buffering=0)
        self.reader = answers_read
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=5)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.writer.close()
        with contextlib.suppress(OSError):
            os.close(self.reader)
        shutil.rmtree(self.profile, ignore_errors=True)

    def version(self) -> str:
        return self.send("Browser.getVersion")["product"]

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            answer = self._read(end)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise CDPError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def _read(self, end: float) -> dict:
        import select

        while b"\0" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self.reader], [], [], left)
            if ready:
                chunk = os.read(self.reader, 1 << 20)
                if not chunk:
                    raise CDPError("Chromium closed the pipe (did it crash?)")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Page.navigate", url=url)
        return page


def write_y4m(path: str, frames, fps: int = 15) -> str:
    """Writes RGB frames (H, W, 3) uint8 as a YUV4MPEG2 file (4:2:0), what
    ``--use-file-for-fake-video-capture`` plays as the camera (looping)."""
    import cv2

    height, width = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def camera_flags(y4m: str) -> list[str]:
    """Chromium switches for a fake camera playing ``y4m``, the permission granted."""
    return ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}",
            "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
