"""What the held-out checks inside each epoch cost: for a preset, one-epoch runs with and without them, alternating,
and within the runs with them, the share of the training time the mid-epoch checks themselves took (each one's time
is the gap between the batch it follows and its own event: nothing else happens there; the epoch's last check comes
from the full evaluation's pass and costs nothing more)."""

from __future__ import annotations

import statistics

from digitlab.config import preset
from digitlab.data import load_mnist
from digitlab.engine import HELD_OUT_POINTS, BatchEnd, HeldOutScore, RunEnd, RunStart, train

PRESETS = ("fast", "seed-cnn")
PAIRS = 3


def one_epoch(root, name: str, points: int) -> tuple[float, float]:
    """(train_s, seconds the mid-epoch checks took) of one epoch of preset ``name``."""
    per_epoch = 0
    last_batch = checks = train_s = 0.0
    for event in train(preset(name).replace(epochs=1), load_mnist(root), held_out_points=points):
        if isinstance(event, RunStart):
            per_epoch = event.batches_per_epoch
        elif isinstance(event, BatchEnd):
            last_batch = event.elapsed_s
        elif isinstance(event, HeldOutScore) and event.batch < per_epoch:
            checks += event.elapsed_s - last_batch
        elif isinstance(event, RunEnd):
            train_s = event.train_s
    return train_s, checks


def run_held_out_cost(root) -> None:
    load_mnist(root)  # reading the files once is not part of any figure
    for name in PRESETS:
        with_checks, without, shares = [], [], []
        for _ in range(PAIRS):
            without.append(one_epoch(root, name, 0)[0])
            train_s, checks = one_epoch(root, name, HELD_OUT_POINTS)
            with_checks.append(train_s)
            shares.append(checks / train_s)
        off, on = statistics.median(without), statistics.median(with_checks)
        print(f"held-out checks, {name}: {statistics.median(shares):.1%} of the epoch in the checks (median of "
              f"{PAIRS}); one epoch {off:.2f} s without them, {on:.2f} s with ({on / off - 1:+.1%})", flush=True)
