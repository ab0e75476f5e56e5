"""Cached loaders: the run store, the server's jobs, MNIST, runs with their models, predictions, drawings and their
scores. Each is loaded once per server and again only when its files change."""

from __future__ import annotations

import os
import threading

import streamlit as st
import torch

from digitlab.dashboard.jobs.coordinator import Coordinator
from digitlab.dashboard.text import markdown_literal, shorten
from digitlab.data import MNIST, DataNotFoundError, TestSplit, load_mnist, load_test_split
from digitlab.device import describe, pick_device, prepare
from digitlab.drawings import Answers, ClassCollection, DrawingListing, DrawingScore, DrawingStore
from digitlab.predict import RunPredictions, predict, run_predictions
from digitlab.significance import ComparisonError, mcnemar
from digitlab.store import WEIGHTS_FILE, Listing, LoadedRun, RunError, RunRecord, RunStore


def store() -> RunStore:
    return RunStore()


@st.cache_resource(show_spinner=False, max_entries=4)
def _last_listing(root: str) -> dict:
    """The store's last listing and the fingerprint it was read at, for every session of the server."""
    return {}


def list_runs() -> Listing:
    """Every run of the store. Every page lists the runs on every rerun (each pen-up on Draw), so the listing is read
    again only when the store's fingerprint changes (a stat of each run's files), or while a run is "running": its
    trainer may die without a file changing."""
    runs = store()
    fingerprint = runs.fingerprint()  # before the listing: a change while it is read makes the next call read again
    last = _last_listing(str(runs.root))
    listing = last.get("listing")
    if (listing is None or last.get("fingerprint") != fingerprint
            or any(record.status == "running" for record in listing.runs)):
        listing = runs.list()
        last.update(fingerprint=fingerprint, listing=listing)
    return listing


def coordinator() -> Coordinator:
    """One per server and store: every tab sees the same jobs, and "Clear caches" keeps them."""
    return Coordinator.for_store(store())


@st.cache_resource(show_spinner="Loading MNIST...")
def mnist() -> MNIST:
    return load_mnist()


@st.cache_resource(show_spinner=False)
def test_split() -> TestSplit | MNIST:
    """MNIST's test split, for the pages that read no training image (Compare, Errors): their first visit in a
    server's life does not wait for the whole of MNIST."""
    return load_test_split()


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    device = pick_device("auto")
    prepare(device)
    return describe(device)


def weights_stamp(record: RunRecord) -> float:
    """When the run's weights file last changed: with its folder, what the caches of its outputs are keyed by."""
    try:
        return record.weights_path.stat().st_mtime_ns
    except OSError as err:  # deleted since the listing: the loaders' callers handle RunError only
        raise RunError(f"{WEIGHTS_FILE} cannot be read ({err.strerror})") from None


def run_cache_key(record: RunRecord) -> tuple[str, float]:
    """(its folder, weights_stamp): the first arguments of every cached computation on a run."""
    return str(record.path), weights_stamp(record)


def image_bytes(image01: torch.Tensor) -> bytes:
    """A (28, 28) image on 0..1 as bytes: what a cached computation on an image is keyed by."""
    return image01.float().contiguous().numpy().tobytes()


def image_from_bytes(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(28, 28)


@st.cache_resource(show_spinner=False, max_entries=32)
def loaded_run(path: str, stamp: float) -> LoadedRun:
    """The run in ``path`` with its model, as loaded when its weights had ``stamp`` (see run_cache_key)."""
    loaded = RunStore(os.path.dirname(path)).load(path)
    predict(loaded.model, torch.zeros(1, 1, 28, 28))  # the first call sets up oneDNN's kernels: not on a user's stroke
    return loaded


def loaded_run_for(record: RunRecord) -> LoadedRun:
    """The run with its model, loaded once per server (and again only when its weights file changes); RunError if
    its weights went bad since the listing."""
    return loaded_run(*run_cache_key(record))


def model_for(record: RunRecord) -> torch.nn.Module:
    return loaded_run_for(record).model


@st.cache_data(show_spinner="Computing predictions over the 10,000 test images...", max_entries=32)
def _predictions(path: str, stamp: float) -> RunPredictions:
    return run_predictions(loaded_run(path, stamp), test_split())


def predictions_for(record: RunRecord) -> RunPredictions:
    return _predictions(*run_cache_key(record))


def significance(first: RunRecord, second: RunRecord) -> tuple[bool, str]:
    """(True, McNemar's sentence) for two runs' test predictions, or (False, why it cannot say): the same run twice,
    weights that cannot be read, no MNIST. Names are escaped for Markdown."""
    first_name, second_name = shorten(first.name), shorten(second.name)
    try:
        result = mcnemar(predictions_for(first), predictions_for(second), first_name, second_name,
                         same_run=first.path == second.path)
    except (ComparisonError, RunError, DataNotFoundError) as err:
        return False, markdown_literal(str(err))
    return True, markdown_literal(result.sentence)


def drawing_store() -> DrawingStore:
    """The drawings folder: DIGITLAB_DRAWINGS, else ./drawings."""
    return DrawingStore()


@st.cache_resource(show_spinner=False, max_entries=4)
def _known_drawings(root: str) -> dict:
    """The drawings of the folder ``root`` read so far, by (name, time, size): each file is read once."""
    return {}


@st.cache_resource(show_spinner=False, max_entries=4)
def _drawings(root: str, fingerprint: tuple) -> DrawingListing:
    return DrawingStore(root).list(_known_drawings(root))


def drawings() -> DrawingListing:
    """Every saved drawing, listed again only when a file of the folder changes (saved, relabelled, deleted), and
    then reading only the files that did."""
    folder = drawing_store()
    return _drawings(str(folder.root), folder.fingerprint())


@st.cache_resource(show_spinner=False, max_entries=64)
def _answers(path: str, stamp: float, root: str) -> Answers:
    return Answers(loaded_run(path, stamp))


def drawing_scores(records: list[RunRecord]) -> dict[str, DrawingScore]:
    """Each run's answers on the saved drawings, by run id, in the order of ``records``, each drawing predicted once
    per run; runs whose weights went bad since the listing are left out."""
    folder = drawing_store()
    listed = drawings().drawings
    scores = {}
    for record in records:
        try:
            scores[record.id] = _answers(*run_cache_key(record), str(folder.root)).score(listed)
        except RunError:
            continue
    return scores


_class_collections: dict[str, ClassCollection] = {}
_class_collections_lock = threading.Lock()


def class_collection() -> ClassCollection:
    """The class's collection in the drawings folder: one per server and folder, which keeps each tab's bounds (a
    module global, not a Streamlit cache: the menu's "Clear caches" must not reset them)."""
    root = str(drawing_store().root.resolve())
    with _class_collections_lock:
        if root not in _class_collections:
            _class_collections[root] = ClassCollection(DrawingStore(root))
        return _class_collections[root]
