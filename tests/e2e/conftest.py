"""Fixtures for the browser tests: the app served from a temporary run store, and Debian's Chromium via Playwright.

The tests skip on a machine with no Chromium (one line says so); with DIGITLAB_E2E_REQUIRED=1, as in CI, a
missing browser is a failure instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import real_data_root
from tests.e2e.browser import LAUNCH_ARGS, Tab, copy_shipped, find_chromium, serve_app


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
    """The app over a temporary copy of the run store (shipped checkpoints included): never checkpoints/."""
    store = copy_shipped(tmp_path_factory.mktemp("e2e") / "checkpoints")
    log = tmp_path_factory.mktemp("e2e-server") / "streamlit.log"
    with serve_app(store, e2e_data_root, log) as url:
        yield AppServer(url, store, log, e2e_data_root)


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
