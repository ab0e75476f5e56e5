"""Fixtures for the browser tests: the app served from a temporary run store, and Debian's Chromium via Playwright.

The tests skip on a machine with no Chromium (one line says so); with DIGITLAB_E2E_REQUIRED=1, as in CI, a
missing browser is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, SHIPPED, real_data_root

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
# Streamlit's own frontend probes these relative to a sub-page URL first (/train/_stcore/health) and falls back
# to the root: the 404s it logs are part of how it finds its server, not errors of the app.
BENIGN_404_SUFFIXES = ("/_stcore/health", "/_stcore/host-config")


def find_chromium() -> str | None:
    for candidate in (os.environ.get("DIGITLAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = "browser tests need Chromium (/usr/bin/chromium) and playwright; none found"
        if os.environ.get("DIGITLAB_E2E_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def e2e_data_root(tmp_path_factory) -> Path:
    """The real MNIST when it is there (CI), else the tests' tiny synthetic one."""
    real = real_data_root()
    if real is not None:
        return real
    from tests.fakedata import write_tiny_mnist

    return write_tiny_mnist(tmp_path_factory.mktemp("e2e-tiny-mnist"))


@pytest.fixture(scope="session")
def app_server(chromium_path, tmp_path_factory, e2e_data_root):
    """`streamlit run app.py` on a free port over a temporary copy of the run store; stopped at the end."""
    store = tmp_path_factory.mktemp("e2e") / "checkpoints"
    store.mkdir()
    for run in SHIPPED.glob("shipped-*"):
        shutil.copytree(run, store / run.name, ignore=shutil.ignore_patterns(".lock"))
    port = free_port()
    log = tmp_path_factory.mktemp("e2e-server") / "streamlit.log"
    env = {**os.environ, "DIGITLAB_CHECKPOINTS": str(store), "DIGITLAB_DATA": str(e2e_data_root)}
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
                pytest.fail(f"the app did not start; its log: {log}\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield AppServer(url, store, log, e2e_data_root)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class AppServer:
    def __init__(self, url: str, store: Path, log: Path, data_root: Path):
        self.url, self.store, self.log, self.data_root = url, store, log, data_root

    @property
    def real_data(self) -> bool:
        return self.data_root == real_data_root()


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


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
        """Wait until Streamlit has finished running the script: a run that was just triggered starts within a
        moment, and the app reports 'notRunning' once it is done."""
        app = self.page.locator("[data-testid='stApp']")
        try:
            self.page.wait_for_selector("[data-testid='stApp']:not([data-test-script-state='notRunning'])",
                                        timeout=1500)
        except Exception:  # the run was over before we looked
            pass
        self.page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning'][data-test-connection-state='CONNECTED']",
            timeout=timeout * 1000)
        assert app.count() == 1

    def exceptions(self) -> list[str]:
        return self.page.locator("[data-testid='stException']").all_inner_texts()

    def keyed(self, key: str) -> str:
        """The CSS selector of the element the app gave ``key`` (Streamlit writes dots as dashes)."""
        return f".st-key-{key.replace('.', '-')}"

    def trace_lengths(self, key: str) -> list[int] | None:
        """Points per trace of the Plotly chart with ``key``, read from the chart itself; None if not drawn."""
        return self.page.evaluate(
            """(selector) => { const plot = document.querySelector(selector + ' .js-plotly-plot');
                               return plot && plot.data ? plot.data.map(t => (t.x || []).length) : null; }""",
            self.keyed(key))

    def click_button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()
        self.wait_for_rerun()


@pytest.fixture
def new_tab(browser, app_server, request, tmp_path_factory):
    """Open tabs (each its own Streamlit session); on failure keep a screenshot and the console of each."""
    contexts, tabs = [], []

    def make() -> Tab:
        context = browser.new_context(viewport={"width": 1440, "height": 1100})
        contexts.append(context)
        tab = Tab(context.new_page(), app_server.url)
        tabs.append(tab)
        return tab

    yield make
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = tmp_path_factory.mktemp(f"e2e-failure-{request.node.name[:40]}")
        for i, tab in enumerate(tabs):
            try:
                tab.page.screenshot(path=str(folder / f"tab{i}.png"), full_page=True)
            except Exception as err:  # a crashed tab still gets its console saved
                (folder / f"tab{i}-screenshot-error.txt").write_text(str(err))
            (folder / f"tab{i}-console.log").write_text("\n".join(tab.console))
        print(f"\nbrowser screenshots and console logs of the failure: {folder} (server log: {app_server.log})")
    for context in contexts:
        context.close()
