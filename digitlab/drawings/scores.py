"""Every model's accuracy on the drawings: the same preprocessing as Draw, then each run's own input scaling."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from digitlab.drawings.files import DIGITS, Drawing
from digitlab.inside import model_input
from digitlab.predict import predict
from digitlab.store import LoadedRun


@dataclass(frozen=True)
class DrawingScore:
    """One run's answers on the drawings."""

    run_id: str
    labels: dict[str, int]  # drawing id: its label
    predicted: dict[str, int]  # drawing id: the run's guess
    confidence: dict[str, float]  # drawing id: the probability of that guess

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> int:
        return sum(self.predicted[i] == label for i, label in self.labels.items())

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None

    @property
    def per_digit(self) -> dict[int, tuple[int, int]]:
        """digit: (correct, drawings with that label), for every digit 0-9."""
        totals = {digit: [0, 0] for digit in DIGITS}
        for drawing_id, label in self.labels.items():
            totals[label][0] += self.predicted[drawing_id] == label
            totals[label][1] += 1
        return {digit: (correct, count) for digit, (correct, count) in totals.items()}

    @property
    def wrong(self) -> list[str]:
        return [i for i, label in self.labels.items() if self.predicted[i] != label]


def score(run: LoadedRun, drawings: Sequence[Drawing]) -> DrawingScore:
    """The run's guesses on the drawings, each preprocessed as on Draw (the canvas fitted to 28 x 28, then scaled
    the way the run was trained: its config.input_scaling)."""
    return Answers(run).score(drawings)


BATCH = 1000  # drawings a forward pass: a whole class's collection at once would hold all its activations


class Answers:
    """A run's answers on drawings, each drawing's computed once: its pixels never change (a relabel rewrites its
    label only), so a collection that grows by one drawing costs one prediction, not all of them again."""

    def __init__(self, run: LoadedRun):
        self.run = run
        self._answers: dict[str, tuple[int, float]] = {}  # drawing id -> (guess, confidence)
        self._lock = threading.Lock()

    def score(self, drawings: Sequence[Drawing]) -> DrawingScore:
        with self._lock:
            new = [d for d in drawings if d.id not in self._answers]
            for start in range(0, len(new), BATCH):
                chunk = new[start : start + BATCH]
                probs = predict(self.run.model, model_input(self.run, torch.stack([d.image for d in chunk])))  # (N, 10)
                confidence, predicted = probs.max(1)
                self._answers.update(zip([d.id for d in chunk], zip(predicted.tolist(), confidence.tolist())))
            answers = {d.id: self._answers[d.id] for d in drawings}
        return DrawingScore(self.run.id, {d.id: d.label for d in drawings},
                            {i: guess for i, (guess, _) in answers.items()},
                            {i: confidence for i, (_, confidence) in answers.items()})
