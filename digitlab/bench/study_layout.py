"""`python -m digitlab bench --study-workers`: which split of this machine's cores between study workers is faster.

For each preset, a study of TRIALS one-epoch trials on the real MNIST is run from the command line, as a user runs
it (`python -m digitlab study run`): once with one worker using every thread, once with one worker per thread (at
most one per trial), alternating, ROUNDS times. Each is timed from start to its last line (process starts and data
loading included) and reported as training images per second. Each study runs in a temporary run store, so nothing
is left behind.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from digitlab.data import load_mnist
from digitlab.device import cpu_threads
from digitlab.study import DEFAULT_VALIDATION_SIZE

PRESETS = ("fast", "seed-cnn")
TRIALS = 4
ROUNDS = 2


def study_seconds(root, preset: str, workers: int, trials: int = TRIALS) -> float:
    """Wall seconds of `digitlab study run` with ``workers`` processes sharing this machine's threads."""
    with tempfile.TemporaryDirectory(prefix="digitlab-bench-study-") as out:
        command = [sys.executable, "-m", "digitlab", "study", "run", f"bench-{preset}", "--base", preset,
                   "--repeat", str(trials), "--epochs", "1", "--workers", str(workers), "--quiet",
                   "--out", out, "--no-download", *(["--data", str(root)] if root else [])]  # loaded once already
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)  # Optuna logs each trial on stderr
        seconds = time.perf_counter() - start
    if finished.returncode != 0:
        raise RuntimeError(f"the study failed ({' '.join(command)}):\n{finished.stderr[-3000:]}")
    return seconds


def run_study_layout_bench(root, presets: tuple[str, ...] = PRESETS, trials: int = TRIALS,
                           rounds: int = ROUNDS) -> None:
    threads = cpu_threads()
    if threads < 2:
        print("one thread on this machine: there is no split of it between workers to compare")
        return
    spread = min(threads, trials)  # `study run` starts no more workers than there are trials
    layouts = {f"1 worker x {threads} threads": 1, f"{spread} workers x {threads // spread} thread(s)": spread}
    images = trials * (len(load_mnist(root).train_images) - DEFAULT_VALIDATION_SIZE)
    print(f"a study of {trials} one-epoch trials ({images:,} training images), {rounds} rounds, alternating",
          flush=True)
    for preset in presets:
        rates: dict[str, list[float]] = {label: [] for label in layouts}
        for _ in range(rounds):  # alternating, so that a drift of the host's speed touches both layouts alike
            for label, workers in layouts.items():
                rates[label].append(images / study_seconds(root, preset, workers, trials))
        for label, found in rates.items():
            print(f"{preset:9} {label:26} " + ", ".join(f"{rate:,.0f}" for rate in found) + " images/s", flush=True)
