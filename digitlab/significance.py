"""Is one run really better than another on the test set? McNemar's exact test over the images they disagree on.

Two runs scored on the same 10,000 images are paired: what matters is b, the images A gets right and B wrong, and
c, the reverse. If the runs were equally good, each disagreement would go either way with probability 1/2, so
min(b, c) is binomial(b + c, 1/2) and the two-sided p is twice its lower tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from digitlab.predict import RunPredictions

SIGNIFICANCE_LEVEL = 0.05


class ComparisonError(ValueError):
    """Two prediction sets that cannot be compared; the message says why."""


@dataclass(frozen=True)
class McNemarResult:
    name_a: str
    name_b: str
    b: int  # images A gets right and B gets wrong
    c: int  # images B gets right and A gets wrong
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL

    @property
    def sentence(self) -> str:
        """E.g. "cnn is right on 31 images that lenet gets wrong, lenet on 12 that cnn gets wrong: p = 0.005, a real
        difference"."""
        verdict = "a real difference" if self.significant else "could be chance"
        return (f"{self.name_a} is right on {_images(self.b)} that {self.name_b} gets wrong, {self.name_b} on "
                f"{self.c} that {self.name_a} gets wrong: p = {_format_p(self.p_value)}, {verdict}")


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _format_p(p: float) -> str:
    if p >= 0.001:
        return f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1"
    return f"{p:.1e}"


def exact_p_value(b: int, c: int) -> float:
    """Two-sided exact McNemar p: min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2); 1 when b + c = 0."""
    if b < 0 or c < 0:
        raise ValueError(f"b and c count images, so they cannot be negative; got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # Exact integers: math.comb stays exact however many disagreements, and one division at the end.
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def mcnemar_counts(correct_a: torch.Tensor, correct_b: torch.Tensor) -> tuple[int, int]:
    """(b, c) from two boolean (N,) tensors of which images each run got right, in the same image order."""
    if correct_a.shape != correct_b.shape:
        raise ComparisonError(f"the runs were scored on different numbers of images ({tuple(correct_a.shape)} and "
                              f"{tuple(correct_b.shape)}); compare predictions over the same test set")
    return int((correct_a & ~correct_b).sum()), int((correct_b & ~correct_a).sum())


def mcnemar(a: RunPredictions, b: RunPredictions, name_a: str = "A", name_b: str = "B",
            same_run: bool | None = None) -> McNemarResult:
    """McNemar's exact test of run A against run B over the same test images.

    Refuses (ComparisonError) predictions from different test sets (their test_sha256 differ), and a run compared
    with itself: pass ``same_run`` when the caller knows the runs' ids, else predictions that are the very same
    object count as the same run."""
    if same_run is None:
        same_run = a is b
    if same_run:
        raise ComparisonError(f"{name_a} is compared with itself; pick two different runs")
    if a.test_sha256 is not None and b.test_sha256 is not None and a.test_sha256 != b.test_sha256:
        raise ComparisonError(f"{name_a} and {name_b} were scored on different test sets, so their mistakes cannot be "
                              "paired image by image; compute both with run_predictions on the same data")
    if a.labels.shape != b.labels.shape or not torch.equal(a.labels, b.labels):
        raise ComparisonError(f"{name_a} and {name_b} carry different test labels, so they are not predictions over "
                              "the same images; compute both with run_predictions on the same data")
    b_count, c_count = mcnemar_counts(a.predicted == a.labels, b.predicted == b.labels)
    return McNemarResult(name_a, name_b, b_count, c_count, exact_p_value(b_count, c_count))


def compare_runs(run_a, run_b, data) -> McNemarResult:
    """McNemar's test of two LoadedRuns over ``data``'s test set, named by their run names."""
    from digitlab.predict import run_predictions

    return mcnemar(run_predictions(run_a, data), run_predictions(run_b, data), run_a.record.name, run_b.record.name,
                   same_run=run_a.id == run_b.id and run_a.record.path == run_b.record.path)
