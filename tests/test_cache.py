"""digitlab.cache: a result computed once, kept under the key it was computed from, and recomputed when stale or
damaged, beside a run or in the cache folder."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from digitlab.cache import cached, is_cached, run_entry, shared_entry
from digitlab.store import load_run
from tests.conftest import refuse_writes_under


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def counting(value: torch.Tensor):
    calls = []

    def compute() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"x": value}

    return compute, calls


def test_a_result_is_computed_once_then_read_until_its_key_changes(cache_folder):
    entry = shared_entry("notebook/x.safetensors", {"format": "x-1"}, {"x": (3,)})
    compute, calls = counting(torch.arange(3.0))
    assert not is_cached(entry)
    assert torch.equal(cached(entry, compute)["x"], torch.arange(3.0)) and is_cached(entry)
    assert torch.equal(cached(entry, compute)["x"], torch.arange(3.0)) and len(calls) == 1
    assert (cache_folder / "notebook" / "x.safetensors").is_file()
    newer = replace(entry, key={"format": "x-2"})
    assert not is_cached(newer) and cached(newer, compute) and len(calls) == 2
    wrong_shape = replace(newer, shapes={"x": (4,)})
    assert wrong_shape.read() is None


def test_a_damaged_file_is_recomputed_never_used(cache_folder):
    entry = shared_entry("x.safetensors", {"format": "x-1"}, {"x": (3,)})
    compute, calls = counting(torch.ones(3))
    cached(entry, compute)
    (cache_folder / "x.safetensors").write_bytes(b"not a safetensors file")
    assert entry.read() is None and not is_cached(entry)
    assert torch.equal(cached(entry, compute)["x"], torch.ones(3)) and len(calls) == 2


def test_a_runs_result_goes_beside_it_else_to_the_cache_folder(store_with_shipped, cache_folder, monkeypatch):
    run = load_run(store_with_shipped / "shipped-mlp")
    key = {"format": "mine-1", "weights_sha256": run.weights_sha256}
    cached(run_entry(run, "mine", key, {"x": (2,)}, prefix="notebook"), lambda: {"x": torch.zeros(2)})
    assert (run.record.path / "notebook-mine.safetensors").is_file()
    refuse_writes_under(monkeypatch, run.record.path)
    cached(run_entry(run, "other", key, {"x": (2,)}), lambda: {"x": torch.zeros(2)})
    assert not (run.record.path / "other.safetensors").exists()
    assert (cache_folder / run.weights_sha256 / "other.safetensors").is_file()


def test_in_read_only_mode_a_runs_result_is_read_beside_it_and_written_to_the_cache_folder(store_with_shipped,
                                                                                          cache_folder, monkeypatch):
    run = load_run(store_with_shipped / "shipped-mlp")
    key = {"format": "mine-1", "weights_sha256": run.weights_sha256}
    cached(run_entry(run, "kept", key, {"x": (2,)}), lambda: {"x": torch.ones(2)})
    monkeypatch.setenv("DIGITLAB_READ_ONLY", "1")
    assert torch.equal(cached(run_entry(run, "kept", key, {"x": (2,)}), lambda: pytest.fail("recomputed"))["x"],
                       torch.ones(2))
    cached(run_entry(run, "new", key, {"x": (2,)}), lambda: {"x": torch.zeros(2)})
    assert not (run.record.path / "new.safetensors").exists()
    assert (cache_folder / run.weights_sha256 / "new.safetensors").is_file()
