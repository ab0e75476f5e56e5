"""Caches of computed results: safetensors files whose metadata is the key they were computed under.

A cache entry (CacheEntry) names the files a result may be in and the key it must have been written under: what
it was computed from (a weights hash, a data set's fingerprint, a format or code version). A file written under
another key, or damaged, is recomputed, never used. Where a run's result goes (run_entry): beside the run, or in the
cache folder (DIGITLAB_CACHE, default ~/.cache/digitlab) under the weights' hash when the run's folder cannot be
written or in read-only mode (digitlab.store.read_only). Results of no run (shared_entry) go to the cache folder.
In a notebook::

    entry = run_entry(run, "mine", {"format": "mine-1", "weights_sha256": run.weights_sha256}, {"x": (10,)})
    x = cached(entry, lambda: {"x": compute(run)})["x"]  # computed the first time, read after that
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from digitlab.files import atomic_write
from digitlab.store import LoadedRun, read_only

Tensors = dict[str, torch.Tensor]


def cache_folder() -> Path:
    """Where caches go that belong to no run, or whose run's folder is read-only: DIGITLAB_CACHE, else
    ~/.cache/digitlab."""
    return Path(os.environ.get("DIGITLAB_CACHE") or "~/.cache/digitlab").expanduser()


def read_tensors(path: Path, key: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> Tensors | None:
    """The tensors of one cache file, if it was written under ``key`` and holds tensors of these shapes (each
    shape a prefix of the tensor's); None otherwise: a stale or damaged file is recomputed, never used."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if f.metadata() != key:
                return None
            tensors = {k: f.get_tensor(k) for k in shapes}
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
        return None
    return tensors if all(tensors[k].shape[: len(s)] == s for k, s in shapes.items()) else None


def write_tensors(path: Path, key: dict[str, str], tensors: Tensors) -> None:
    """One cache file, written atomically with ``key`` as its metadata; OSError where the folder is not writable."""
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=key))


@dataclass(frozen=True)
class CacheEntry:
    """One cached result: the files it may be in, and the key and tensor shapes a file must have to be used."""

    read_from: tuple[Path, ...]  # in this order
    write_to: tuple[Path, ...]  # the first of these that can be written
    key: dict[str, str]
    shapes: dict[str, tuple[int, ...]]  # each tensor's shape, or a prefix of it

    def read(self) -> Tensors | None:
        """The cached tensors, or None where no file holds them under this key."""
        for path in self.read_from:
            if (tensors := read_tensors(path, self.key, self.shapes)) is not None:
                return tensors
        return None

    def write(self, tensors: Tensors) -> None:
        """Keep ``tensors`` in the first file that can be written; where none can, they are computed again next
        time."""
        for path in self.write_to:
            try:
                write_tensors(path, self.key, tensors)
                return
            except OSError:
                continue


def run_entry(run: LoadedRun, name: str, key: dict[str, str], shapes: dict[str, tuple[int, ...]],
              prefix: str | None = None) -> CacheEntry:
    """A run's result: beside it as <prefix>-<name>.safetensors (<name>.safetensors without a prefix), else in the
    cache folder as <weights hash>/<name>.safetensors. ``name`` is unique across the modules that cache per run
    (predictions; inside: train, map; robustness: corruptions, adversarial); ``prefix`` names the module. In
    read-only mode it is read from either place and written to the cache folder only."""
    beside = run.record.path / (f"{prefix}-{name}.safetensors" if prefix else f"{name}.safetensors")
    shared = cache_folder() / run.weights_sha256 / f"{name}.safetensors"
    return CacheEntry((beside, shared), (shared,) if read_only() else (beside, shared), key, shapes)


def shared_entry(relative: str, key: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> CacheEntry:
    """A result of no run, in the cache folder at ``relative`` (a path ending in .safetensors)."""
    path = cache_folder() / relative
    return CacheEntry((path,), (path,), key, shapes)


def is_cached(entry: CacheEntry) -> bool:
    """Whether ``cached`` would read the result rather than compute it: only the files' keys are read."""
    return replace(entry, shapes={}).read() is not None


def cached(entry: CacheEntry, compute: Callable[[], Tensors]) -> Tensors:
    """The cached tensors, or ``compute()``'s, kept for next time."""
    tensors = entry.read()
    if tensors is None:
        tensors = compute()
        entry.write(tensors)
    return tensors
