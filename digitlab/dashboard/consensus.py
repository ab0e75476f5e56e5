"""Every model on one drawing: predictions side by side, and the words for where they disagree."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from digitlab.dashboard.text import markdown_literal
from digitlab.device import one_thread
from digitlab.predict import predict
from digitlab.data import scale_pixels
from digitlab.preprocess import fit_digit, ink_image


@dataclass(frozen=True)
class Guess:
    model: str  # the model's name, as the page shows it
    digit: int
    confidence: float
    probs: torch.Tensor  # (10,)
    key: str = ""  # what the caller keyed the model by (a run id): names need not be unique


def predict_all(models: Mapping[str, nn.Module], pixels: torch.Tensor, names: Mapping[str, str] | None = None,
                scalings: Mapping[str, str] | None = None) -> list[Guess]:
    """Each model's guess for one drawing's (28, 28) pixels on 0..1, scaled the way that model was trained
    (``scalings``: its run's input_scaling, default MNIST's), in the order of ``models``, which are keyed uniquely
    (by run id); ``names`` gives the name to show for a key (default: the key)."""
    guesses = []
    for key, model in models.items():
        probs = predict(model, scale_pixels(pixels, (scalings or {}).get(key, "mnist"))[None, None])[0]
        confidence, digit = probs.max(0)
        guesses.append(Guess((names or {}).get(key, key), digit.item(), confidence.item(), probs, key))
    return guesses


def guess_drawing(models: Mapping[str, nn.Module], rgba, names: Mapping[str, str] | None = None,
                  scalings: Mapping[str, str] | None = None) -> tuple[torch.Tensor | None, list[Guess], float]:
    """A canvas's RGBA -> (what the models see: (28, 28) pixels on 0..1, or None when empty; their guesses;
    milliseconds for both)."""
    start = time.perf_counter()
    with one_thread():
        pixels = fit_digit(ink_image(rgba))
        guesses = [] if pixels is None else predict_all(models, pixels, names, scalings)
    return pixels, guesses, (time.perf_counter() - start) * 1000


def agreement(guesses: list[Guess]) -> tuple[bool, str]:
    """(do all models agree?, a Markdown sentence saying so or naming who says what, names escaped).

    "All 4 models say 7." or "cnn says 7 (91%), mlp says 1 (55%)" — the most popular answer first.
    """
    if not guesses:
        return True, ""
    votes: dict[int, list[Guess]] = {}
    for guess in guesses:
        votes.setdefault(guess.digit, []).append(guess)
    if len(votes) == 1:
        digit = guesses[0].digit
        if len(guesses) == 1:
            return True, f"{markdown_literal(guesses[0].model)} says {digit} ({guesses[0].confidence:.0%})."
        return True, f"All {len(guesses)} models say {digit}."
    ranked = sorted(votes.values(), key=lambda group: (-len(group), -max(g.confidence for g in group)))
    parts = [f"{markdown_literal(g.model)} says {g.digit} ({g.confidence:.0%})" for group in ranked for g in group]
    return False, ", ".join(parts)
