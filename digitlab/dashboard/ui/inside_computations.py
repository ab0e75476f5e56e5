"""The Inside page's computations, cached across reruns and page switches by run path and weights stamp, with a
progress bar and a time estimate where they are slow (embedding a run's training and test images)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import streamlit as st
import torch

from digitlab import inside
from digitlab.dashboard.ui import loaders
from digitlab.store import RunRecord


def _input(record: RunRecord, image01: torch.Tensor) -> torch.Tensor:
    return inside.model_input(loaders.loaded_run_for(record), image01)


@st.cache_data(show_spinner=False, max_entries=512)
def _feature_maps(path: str, stamp: float, image_bytes: bytes) -> list[inside.FeatureMap]:
    run = loaders.loaded_run(path, stamp)
    return inside.feature_maps(run, inside.model_input(run, loaders.image_from_bytes(image_bytes)))


def feature_maps(record: RunRecord, image01: torch.Tensor) -> list[inside.FeatureMap]:
    """image01: (28, 28) on 0..1."""
    return _feature_maps(*loaders.run_cache_key(record), loaders.image_bytes(image01))


@st.cache_data(show_spinner=False, max_entries=512)
def _attribution(path: str, stamp: float, image_bytes: bytes, method: str) -> torch.Tensor:
    run = loaders.loaded_run(path, stamp)
    return inside.attribution(run, inside.model_input(run, loaders.image_from_bytes(image_bytes)), method)


def attribution(record: RunRecord, image01: torch.Tensor, method: str) -> torch.Tensor:
    """A (28, 28) map for the predicted class; AttributionError where the method does not apply."""
    return _attribution(*loaders.run_cache_key(record), loaders.image_bytes(image01), method)


@st.cache_data(show_spinner=False, max_entries=32)
def _filters(path: str, stamp: float) -> list[inside.Filters]:
    return inside.filters(loaders.loaded_run(path, stamp))


def filters(record: RunRecord) -> list[inside.Filters]:
    return _filters(*loaders.run_cache_key(record))


@contextlib.contextmanager
def progress_bar(what: str) -> Iterator[inside.Progress]:
    """A progress bar whose text says how long is left, estimated from the pace so far; gone when done."""
    bar = st.progress(0.0, text=what)
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        left = (time.perf_counter() - start) / done * (total - done)
        bar.progress(done / total, text=f"{what}: {done:,} of {total:,}, about {left:.0f} s left")

    try:
        yield show
    finally:
        bar.empty()


@st.cache_resource(show_spinner=False, max_entries=16)
def _training_embeddings(path: str, stamp: float, data_root: str) -> inside.Embeddings:
    return inside.training_embeddings(loaders.loaded_run(path, stamp), loaders.mnist())


def nearest(record: RunRecord, image01: torch.Tensor, k: int = 8) -> list[inside.Neighbour]:
    """The k nearest training images; DataNotFoundError without MNIST. The first call per run embeds the 60,000
    training images under a progress bar and caches them on disk; the cached function then reads that file."""
    run, data = loaders.loaded_run_for(record), loaders.mnist()
    if not inside.embeddings_cached(run, data):
        with progress_bar(f"Embedding the training images for {record.config.model}") as show:
            inside.training_embeddings(run, data, show)
    embeddings = _training_embeddings(*loaders.run_cache_key(record), str(data.root))
    return inside.nearest_training_images(run, inside.model_input(run, image01), k, data, embeddings)


@st.cache_data(show_spinner=False, max_entries=16)
def _embedding_map(path: str, stamp: float, data_root: str) -> inside.EmbeddingMap:
    return inside.embedding_map(loaders.loaded_run(path, stamp), loaders.mnist())


def embedding_map(record: RunRecord) -> inside.EmbeddingMap:
    """The run's map of the test images; DataNotFoundError without MNIST. Slow once per run, as nearest is."""
    run, data = loaders.loaded_run_for(record), loaders.mnist()
    if not inside.map_cached(run, data):
        with progress_bar(f"Mapping the test images for {record.config.model}") as show:
            inside.embedding_map(run, data, show)
    return _embedding_map(*loaders.run_cache_key(record), str(data.root))


def place(record: RunRecord, emap: inside.EmbeddingMap, image01: torch.Tensor) -> tuple[float, float]:
    return emap.place(loaders.loaded_run_for(record), _input(record, image01))
