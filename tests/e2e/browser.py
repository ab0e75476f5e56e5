"""Driving the app in Chromium: serve it, open tabs, wait for Streamlit, read charts. Used by the browser tests
(tests/e2e) and by the dashboard benchmark (python -m tests.e2e.bench_dashboard)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from digitlab.bench.strokes import stroke_points
from tests.conftest import REPO, SHIPPED

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
# Streamlit's own frontend probes these relative to a sub-page URL first (/train/_stcore/health) and falls back
# to the root: the 404s it logs are part of how it finds its server, not errors of the app.
BENIGN_404_SUFFIXES = ("/_stcore/health", "/_stcore/host-config")


def wait_until(predicate, timeout: float, what: str):
    """``predicate()``'s first true value, polled every 0.2 s; the test fails saying ``what`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def find_chromium() -> str | None:
    for candidate in (os.environ.get("DIGITLAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(store: Path, data_root: Path, log: Path, extra_env: dict[str, str] | None = None):
    """`streamlit run app.py` on a free local port over ``store`` (and the drawings folder beside it); yields its
    URL and stops it on exit."""
    port = free_port()
    env = {**os.environ, "DIGITLAB_CHECKPOINTS": str(store), "DIGITLAB_DATA": str(data_root),
           "DIGITLAB_DRAWINGS": str(store.parent / "drawings"),
           "DIGITLAB_WARM_TRAINER": "1", **(extra_env or {})}  # as served by default: a trainer kept ready
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}",
             "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the app did not start; its log: {log}\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def copy_shipped(store: Path) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    for run in SHIPPED.glob("shipped-*"):
        shutil.copytree(run, store / run.name, ignore=shutil.ignore_patterns(".lock"))
    return store


class Tab:
    """A browser tab on the app, recording its console."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url
        self.console: list[str] = []
        self.console_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.console_errors.append(f"page error: {err}"))

    def _on_console(self, message) -> None:
        url = (message.location or {}).get("url", "")
        line = f"{message.type}: {message.text} ({url})"
        self.console.append(line)
        if message.type == "error" and not url.endswith(BENIGN_404_SUFFIXES):
            self.console_errors.append(line)

    def open(self, path: str = "") -> Tab:
        self.page.goto(f"{self.base_url}/{path}")
        self.page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=30000)
        self.wait_for_rerun()
        return self

    def wait_for_rerun(self, timeout: float = 60.0) -> None:
        """Wait until Streamlit has finished the script run an action just triggered: the run starts within a
        moment of the action, and the app reports 'notRunning' once it is done."""
        try:
            self.page.wait_for_selector("[data-testid='stApp']:not([data-test-script-state='notRunning'])",
                                        timeout=1500)
        except Exception:  # the run was over before we looked
            pass
        self.wait_for_idle(timeout)

    def wait_for_idle(self, timeout: float = 60.0) -> None:
        """Wait until no script run is going on and the app is connected."""
        self.page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning'][data-test-connection-state='CONNECTED']",
            timeout=timeout * 1000)

    def exceptions(self) -> list[str]:
        return self.page.locator("[data-testid='stException']").all_inner_texts()

    def keyed(self, key: str) -> str:
        """The CSS selector of the element the app gave ``key`` (Streamlit writes dots as dashes)."""
        return f".st-key-{key.replace('.', '-')}"

    def button(self, key: str):
        """The button the app gave ``key``: a name can be ambiguous (Streamlit's toolbar has a Stop of its own while
        a script runs)."""
        return self.page.locator(self.keyed(key)).get_by_role("button")

    def trace_lengths(self, key: str, chart: str | None = None) -> list[int] | None:
        """Points per trace of the Plotly chart with ``key`` (drawn in the page), or of the live chart named
        ``chart`` in the frame with ``key``, read from the chart itself; None if not drawn."""
        return self.page.evaluate(f"([selector, chart]) => ({TRACE_LENGTHS_JS})(selector, chart)", [self.keyed(key), chart])

    def live_progress(self, key: str) -> str | None:
        """The progress line of the running job in the live charts' frame with ``key``; None if none is shown."""
        return self.page.evaluate("""(selector) => {
            const frame = document.querySelector(`${selector} iframe`);
            const bar = frame && frame.contentDocument && frame.contentDocument.getElementById('progress');
            return bar && !bar.hidden ? bar.innerText : null; }""", self.keyed(key))

    def progress_lines(self, key: str) -> list[str]:
        """The lines of the progress bars in the live charts' frame with ``key`` (a race's, one per run)."""
        return self.page.evaluate("""(selector) => {
            const frame = document.querySelector(`${selector} iframe`);
            const doc = frame && frame.contentDocument;
            return doc ? [...doc.querySelectorAll('#progress > div')].map(bar => bar.innerText) : []; }""",
                                  self.keyed(key))

    def enter_text(self, key: str, text: str) -> None:
        """Type ``text`` into the keyed text or number input and press Enter, as a person would; wait for the run."""
        field = self.page.locator(self.keyed(key)).locator("input")
        field.fill(text)
        field.press("Enter")
        self.wait_for_rerun()

    def click_button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()
        self.wait_for_rerun()


# A JavaScript function (selector, chart) -> points per trace of a Plotly chart, or null if not drawn: of the chart
# in the element matching ``selector``, or of the live chart named ``chart`` in the component frame there.
TRACE_LENGTHS_JS = """(selector, chart) => {
    const host = document.querySelector(selector);
    const frame = host && host.querySelector('iframe');
    const root = frame ? frame.contentDocument : host;
    const plot = root && root.querySelector(chart ? `[data-chart="${chart}"].js-plotly-plot` : '.js-plotly-plot');
    return plot && plot.data ? plot.data.map(t => (t.x || []).length) : null; }"""

CANVAS = "canvas"


def canvas_box(tab):
    """The drawing canvas's box on screen, once the component has mounted it (inside a shadow root, which
    Playwright's locators pierce and document.querySelector does not)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        for handle in tab.page.locator(CANVAS).all():
            box = handle.bounding_box()
            if box and abs(box["width"] - 280) < 2 and abs(box["height"] - 280) < 2:
                return box
        time.sleep(0.2)
    raise AssertionError("no 280x280 canvas on the Draw page")


def draw(tab, digit: int, box=(85, 45, 195, 235), strokes=None) -> None:
    """Trace the digit's strokes (or ``strokes``, in canvas pixels) with the mouse, lifting it between strokes, then
    wait for the predictions."""
    origin = canvas_box(tab)
    tab.wait_for_idle()  # draw on a settled page, as a person would
    for stroke in strokes or stroke_points(digit, box):
        tab.page.mouse.move(origin["x"] + stroke[0][0], origin["y"] + stroke[0][1])
        tab.page.mouse.down()
        for x, y in stroke[1:]:
            tab.page.mouse.move(origin["x"] + x, origin["y"] + y, steps=5)
        tab.page.mouse.up()
    tab.page.wait_for_selector("[data-testid='draw-prediction']", timeout=30000)
    tab.wait_for_rerun()


def save_drawing(tab, label: int, button: str = "Save as a test drawing", done: str = "Saved as a {label}") -> None:
    """On Draw, after drawing: pick ``label`` in the keep box's selector and press ``button`` ("Add to the class
    collection" on a classroom server), then wait for its message."""
    tab.page.locator("[class*='st-key-draw-save_label-']").get_by_role("combobox").click()
    tab.page.get_by_role("option", name=str(label), exact=True).click()
    tab.wait_for_rerun()
    tab.click_button(button)
    tab.page.wait_for_selector(f"text={done.format(label=label)}", timeout=30000)
