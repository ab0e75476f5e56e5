"""`python -m digitlab robustness --bench`: the robustness lab's speeds on the shipped checkpoints, on this machine.

1. a perturbation sweep of 25 steps through all shipped models together, per transformation (p50, p95; limit
   300 ms);
2. generating the 15 corrupted test sets, the first time (seconds);
3. the corruption benchmark of each shipped model, with the sets already generated (seconds); the first model's
   figure plus (2) is what one model costs the first time (limit 60 s).

It works on a temporary copy of the shipped checkpoints (bench.inside_timings.shipped_copies), so that everything is
really computed and no cache is left behind.
"""

from __future__ import annotations

import time

import torch

from digitlab import robustness
from digitlab.bench.inside_timings import _ms, _percentiles, shipped_copies
from digitlab.data import load_mnist
from digitlab.device import configure_cpu
from digitlab.store import LoadedRun, RunStore

REPEATS = 30
PROBE_LIMIT_MS = 300
BENCHMARK_LIMIT_S = 60


def print_sweep_timings(runs: list[LoadedRun], image: torch.Tensor) -> None:
    """Milliseconds to perturb the (28, 28) image 25 times and run the steps through every model, per
    transformation: what the Perturb view computes when its settings change."""

    def probe(transform: str) -> None:
        values = robustness.sweep_values(transform)
        images = robustness.perturb(image, transform, values)
        for run in runs:
            robustness.sweep(run, images, values)

    for transform in robustness.TRANSFORMS:
        for _ in range(3):  # oneDNN sets up its kernels on the first calls
            probe(transform)
        times = [_ms(lambda: probe(transform)) for _ in range(REPEATS)]
        print(f"robustness: sweep of 25 steps, {len(runs)} models, {transform:10} {_percentiles(times)} "
              f"(limit {PROBE_LIMIT_MS} ms)", flush=True)


def run_robustness_bench(root, store: RunStore) -> None:
    configure_cpu()
    data = load_mnist(root)
    with shipped_copies(store, "robustness-*", "predictions.safetensors") as runs:
        if not runs:
            print(f"robustness: no shipped checkpoints in {store.root}")
            return
        print_sweep_timings(runs, data.test_images[0].float() / 255)
        start = time.perf_counter()
        for name in robustness.CORRUPTIONS:
            robustness.corrupted_test_set(name, data)
        generation = time.perf_counter() - start
        print(f"robustness: generating {len(robustness.CORRUPTIONS)} corrupted test sets of "
              f"{len(data.test_labels):,} images: {generation:6.1f} s (once, then cached)", flush=True)
        for run in runs:
            start = time.perf_counter()
            result = robustness.corruption_benchmark(run, data)
            seconds = time.perf_counter() - start
            print(f"robustness: corruption benchmark, {run.id:15} {seconds:6.1f} s, with generation "
                  f"{seconds + generation:6.1f} s (limit {BENCHMARK_LIMIT_S} s); clean {result.clean:.2%}, "
                  f"corrupted mean {result.mean:.2%}", flush=True)
