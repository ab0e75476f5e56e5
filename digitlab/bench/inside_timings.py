"""`python -m digitlab bench --inside`: the Inside page's speeds on the shipped checkpoints, on this machine.

1. feature maps + saliency for one drawing, all shipped models together (p50, p95);
2. integrated gradients (50 steps) and occlusion (the page's first choice), per model (p50, p95);
3. nearest training images once the embeddings are in memory (p50, p95);
4. embedding the 60,000 training images, once per model (seconds);
5. the deletion test of each attribution method, per model: the mean drop in the probability of the model's answer
   when the 10% of pixels the method ranks highest are removed, against 10% removed at random (digitlab.deletion),
   on the first 30 test digits and on 30 pen-stroke digits, as tests/test_inside.py measures it.

It works on a temporary copy of the store, with DIGITLAB_CACHE pointed into it, so that every embedding is really
computed and no cache is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from digitlab import deletion, inside
from digitlab.bench.strokes import pen_digits, render_digit
from digitlab.data import load_mnist
from digitlab.device import configure_cpu
from digitlab.preprocess import canvas_image
from digitlab.store import LoadedRun, RunStore

REPEATS = 50
DELETION_DIGITS = 30


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50, p95 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {p50:7.1f} ms, p95 {p95:7.1f} ms"


def _ms(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def _deletion_drops(run: LoadedRun, images) -> str:
    """Each method's deletion_drop on ``images``, or a dash where the method does not apply (Grad-CAM on an MLP)."""
    drops = []
    for method in inside.METHODS:
        try:
            drops.append(f"{method} {deletion.deletion_drop(run, images, method):.3f}")
        except inside.AttributionError:
            drops.append(f"{method} -")
    return ", ".join(drops)


@contextlib.contextmanager
def shipped_copies(store: RunStore, *left_out: str) -> Iterator[list[LoadedRun]]:
    """The store's shipped runs, loaded from a temporary copy without the files matching ``left_out`` (their
    caches), with DIGITLAB_CACHE pointed into it: every cache is really computed, and none is left behind."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "checkpoints"
        copy.mkdir()
        for record in store.list().runs:
            if record.shipped:
                shutil.copytree(record.path, copy / record.id, ignore=shutil.ignore_patterns(*left_out, ".lock"))
        os.environ["DIGITLAB_CACHE"] = str(Path(scratch) / "cache")
        yield [RunStore(copy).load(path) for path in sorted(copy.iterdir())]


def run_inside_bench(root, store: RunStore) -> None:
    configure_cpu()
    data = load_mnist(root)
    with shipped_copies(store, "inside-*") as runs:
        if not runs:
            print(f"inside: no shipped checkpoints in {store.root}")
            return
        drawings = [canvas_image(render_digit(d)) for d in range(10)]
        inputs = {run.id: [inside.model_input(run, d) for d in drawings] for run in runs}

        def maps_and_saliency(i: int) -> None:
            for run in runs:
                inside.feature_maps(run, inputs[run.id][i % 10])
                inside.attribution(run, inputs[run.id][i % 10], "saliency")

        for i in range(5):  # oneDNN sets up its kernels on the first calls
            maps_and_saliency(i)
        print(f"inside: feature maps + saliency, {len(runs)} models together:  "
              f"{_percentiles([_ms(lambda: maps_and_saliency(i)) for i in range(REPEATS)])} (limit p95 60 ms)")
        for method, label in (("integrated_gradients", "integrated gradients (50 steps)"), ("occlusion", "occlusion")):
            for run in runs:
                image = inputs[run.id]
                inside.attribution(run, image[0], method)
                times = [_ms(lambda: inside.attribution(run, image[i % 10], method)) for i in range(REPEATS // 2)]
                print(f"inside: {label}, {run.id:15} {_percentiles(times)} (limit 150 ms)")
        for run in runs:
            seconds = _ms(lambda: inside.training_embeddings(run, data)) / 1000
            print(f"inside: embedding 60,000 training images, {run.id:15} {seconds:6.2f} s (limit 20 s)", flush=True)
        for run in runs:
            embeddings = inside.training_embeddings(run, data)  # from the cache file just written
            image = inputs[run.id]
            times = [_ms(lambda: inside.nearest_training_images(run, image[i % 10], 8, data, embeddings))
                     for i in range(REPEATS)]
            print(f"inside: nearest 8 training images, {run.id:15} {_percentiles(times)} (limit 30 ms)")
        digit_sets = {"test digits": data.test_images[:DELETION_DIGITS].float() / 255,
                      "pen-stroke digits": pen_digits(DELETION_DIGITS // 10)}
        for which, images in digit_sets.items():
            for run in runs:
                print(f"inside: deletion of the top 10%, {run.id:15} {len(images)} {which}: "
                      f"{_deletion_drops(run, images)}; at random {deletion.random_deletion_drop(run, images):.3f}",
                      flush=True)
