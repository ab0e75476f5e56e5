"""Shipping a run as its architecture's checkpoint, the one every page shows first: scored on the test set and on
the MNIST-C benchmark (digitlab.robustness), and put in place of the current checkpoint only when it beats that one
on both. Caches of a run's outputs are keyed by its weights' hash, so those of the replaced checkpoint are never
taken for the new one's; the new one's are computed as it is shipped, and travel with the repository.

To compute them again for a checkpoint already shipped (after a change of what a cache is keyed by)::

    cache_results(RunStore().load("shipped-cnn"), load_mnist())
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone

from digitlab.data import MNIST, load_mnist
from digitlab.files import write_json
from digitlab.inside import Progress
from digitlab.predict import run_predictions
from digitlab.robustness import adversarial_curve, corruption_benchmark
from digitlab.store import LOCK_FILE, RUN_FILE, SHIPPED_PREFIX, LoadedRun, RunError, RunRecord, RunStore

MAX_CHECKPOINT_BYTES = 10 * 2**20  # a checkpoint travels with the repository


class ShipRefusedError(RunError):
    """A run that cannot replace the checkpoint: not finished, too large, or not better on both scores."""


@dataclass(frozen=True)
class Scores:
    test_acc: float  # on the clean test set
    corruption_mean: float  # mean accuracy over the MNIST-C corruptions

    def line(self) -> str:
        return f"test accuracy {self.test_acc:.2%}, MNIST-C mean {self.corruption_mean:.2%}"


@dataclass(frozen=True)
class ShipReport:
    record: RunRecord  # the checkpoint as it is stored now
    scores: Scores
    replaced: Scores | None  # of the checkpoint it replaced; None where there was none


def scores(run: LoadedRun, data: MNIST, progress: Progress | None = None) -> Scores:
    result = corruption_benchmark(run, data, progress)
    return Scores(result.clean, result.mean)


def cache_results(run: LoadedRun, data: MNIST, progress: Progress | None = None) -> None:
    """Compute and keep beside a shipped checkpoint what its pages would otherwise compute on their first visit
    after a fresh clone: its test predictions (Compare's McNemar box, Errors: 0.4-2.7 s a model here), its
    corruption benchmark (Compare's table) and its accuracy against ε (Inside). Each is keyed by the weights' hash
    and the test set's fingerprint, so they are used only for exactly this checkpoint and this MNIST."""
    run_predictions(run, data)
    corruption_benchmark(run, data, progress)
    adversarial_curve(run, data, progress)


def ship(store: RunStore, run_id: str, data: MNIST | None = None, progress: Progress | None = None) -> ShipReport:
    """Make completed run ``run_id`` the shipped checkpoint of its architecture (folder shipped-<model>, protected),
    replacing the current one only if it beats it on both test accuracy and MNIST-C mean. A refusal
    (ShipRefusedError) says why and changes nothing."""
    record = store.read(run_id)
    if record.shipped:
        raise ShipRefusedError(f"{record.id} is a shipped checkpoint already")
    if record.status != "completed":
        raise ShipRefusedError(f"only completed runs can be shipped; {record.name} is {record.status}")
    size = record.weights_path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise ShipRefusedError(f"{record.name}'s weights take {size / 2**20:.1f} MB; a shipped checkpoint must stay "
                               f"under {MAX_CHECKPOINT_BYTES // 2**20} MB")
    data = data or load_mnist()
    run = store.load(record.id)
    candidate = scores(run, data, progress)
    target = store.path_for(SHIPPED_PREFIX + record.config.model)
    current = scores(store.load(target.name), data, progress) if target.exists() else None
    if current is not None:
        behind = [what for what, new, old in (("test accuracy", candidate.test_acc, current.test_acc),
                                               ("MNIST-C mean", candidate.corruption_mean, current.corruption_mean))
                  if new <= old]
        if behind:
            raise ShipRefusedError(f"{record.name} does not beat {target.name} on {' and '.join(behind)} "
                                   f"({candidate.line()}, against {current.line()}); nothing was changed")
    # Computed in the run's folder, which then becomes the checkpoint's: should this fail, nothing was changed.
    cache_results(run, data, progress)
    # Named as every shipped checkpoint is, whatever the run was called: the pages list them as "cnn (shipped)".
    write_json(record.path / RUN_FILE, {**record.data, "shipped": True, "name": f"{record.config.model} (shipped)"})
    (record.path / LOCK_FILE).unlink(missing_ok=True)
    # The replaced checkpoint steps aside under a name the store lists as a run (never swept as trash): a crash
    # between the two renames leaves both runs readable.
    aside = target.with_name(f"replaced-{target.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
    if current is not None:
        os.replace(target, aside)
    os.replace(record.path, target)
    shutil.rmtree(aside, ignore_errors=True)
    return ShipReport(store.read(target.name), candidate, current)
