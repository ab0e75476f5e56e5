from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

from digitlab.data import RAW_FILES, data_root, load_mnist
from tests.fakedata import write_tiny_mnist

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "checkpoints"
# Beside each shipped checkpoint, besides its run: the caches of its results, committed with it
# (digitlab.shipping.cache_results) or computed later (Inside's embeddings).
SHIPPED_CACHES = ("predictions.safetensors", "robustness-*.safetensors", "inside-*.safetensors")
# digitlab.predict, the module, whose predict a test replaces: the package exports that function under the same name.
PREDICT_MODULE = importlib.import_module("digitlab.predict")


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    """A small synthetic MNIST (300 train, 100 test images) in torchvision's layout."""
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny-mnist"))


@pytest.fixture(scope="session")
def tiny_data(tiny_data_root):
    return load_mnist(tiny_data_root, download=False)


def real_data_root() -> Path | None:
    root = data_root()
    if all((root / "MNIST" / "raw" / name).is_file() for name in RAW_FILES):
        return root
    return None


@pytest.fixture(scope="session")
def real_data():
    """The real MNIST from DIGITLAB_DATA (CI points it at ../shared/data); the test is skipped only when absent."""
    root = real_data_root()
    if root is None:
        pytest.skip(f"the real MNIST files are not in {data_root() / 'MNIST' / 'raw'} (set DIGITLAB_DATA)")
    return load_mnist(root, download=False)


@pytest.fixture
def store_root(tmp_path) -> Path:
    return tmp_path / "checkpoints"


@pytest.fixture
def store_with_shipped(tmp_path) -> Path:
    """A temporary copy of the shipped checkpoints without their cached results (a test computes what it checks):
    tests never write into the repository's own."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    for run in SHIPPED.glob("shipped-*"):
        shutil.copytree(run, root / run.name, ignore=shutil.ignore_patterns(*SHIPPED_CACHES, ".lock"))
    return root


@pytest.fixture(autouse=True)
def _isolated_store(monkeypatch, tmp_path):
    """Code that falls back to the default run store writes into a temporary folder, never checkpoints/ ..."""
    if "DIGITLAB_CHECKPOINTS" not in os.environ or Path(os.environ["DIGITLAB_CHECKPOINTS"]).resolve() == SHIPPED:
        monkeypatch.setenv("DIGITLAB_CHECKPOINTS", str(tmp_path / "default-checkpoints"))
    # ... drawings into a temporary folder, never ./drawings, and caches never into ~/.cache/digitlab
    monkeypatch.setenv("DIGITLAB_DRAWINGS", str(tmp_path / "default-drawings"))
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(autouse=True)
def _no_warm_trainer(monkeypatch):
    """Pages that would keep a trainer ready (a process with torch and MNIST) keep none in unit and AppTest tests;
    the tests of the warm trainer turn it on, and the browser tests' server has it on."""
    monkeypatch.setenv("DIGITLAB_WARM_TRAINER", "0")


def pytest_collection_modifyitems(items):
    """Mark the tests whose outcome depends on the data folder, so that CI can run them once more without it:
    browser tests (tests/e2e/) and those that take the real MNIST."""
    e2e = Path(__file__).resolve().parent / "e2e"
    for item in items:
        if e2e in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture
def damaged_cnn(monkeypatch):
    """shipped-cnn's weights cannot be read (as if damaged after the listing); every other run loads."""
    from digitlab import store

    load = store._load_model

    def load_unless_cnn(record):
        if record.id == "shipped-cnn":
            raise store.RunError("weights.safetensors cannot be read (damaged)")
        return load(record)

    monkeypatch.setattr(store, "_load_model", load_unless_cnn)


def refuse_writes_under(monkeypatch, folder: Path) -> None:
    """Cache writes (digitlab.cache's atomic_write, which every cache goes through) into ``folder`` fail as on a
    read-only file system."""
    from digitlab import cache

    write = cache.atomic_write

    def refuse(path, writer):
        if folder in path.parents:
            raise PermissionError(13, "Read-only file system")
        write(path, writer)

    monkeypatch.setattr(cache, "atomic_write", refuse)
