"""What the Errors page shows of a run's mistakes: filtering, sorting, paging, and two runs' errors compared."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from digitlab.predict import RunPredictions

SORTS = {
    "confident": "Confident mistakes first",
    "unsure": "Nearly right first (least confident)",
    "index": "Test-set order",
}
PER_PAGE = 24


@dataclass(frozen=True)
class ErrorFilter:
    true_class: int | None = None  # None: any
    predicted_class: int | None = None
    min_confidence: float = 0.0
    max_confidence: float = 1.0


def filter_errors(preds: RunPredictions, where: ErrorFilter = ErrorFilter(), sort: str = "confident",
                  among: torch.Tensor | None = None) -> list[int]:
    """Test-set indices of the misclassified images that pass ``where``, in ``sort`` order.

    ``among`` restricts them further to a set of indices (e.g. the errors another run also makes).
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
    idx = preds.misclassified if among is None else among
    keep = torch.ones(len(idx), dtype=torch.bool)
    if where.true_class is not None:
        keep &= preds.labels[idx] == where.true_class
    if where.predicted_class is not None:
        keep &= preds.predicted[idx] == where.predicted_class
    confidence = preds.confidence[idx]
    keep &= (confidence >= where.min_confidence) & (confidence <= where.max_confidence)
    idx = idx[keep]
    if sort != "index":
        # Stable, so ties keep test-set order.
        order = torch.sort(preds.confidence[idx], descending=sort == "confident", stable=True).indices
        idx = idx[order]
    return idx.tolist()


def cell_from_selection(selection: Any) -> tuple[int, int] | None:
    """(true, predicted) of the confusion-matrix cell a click selected, from st.plotly_chart's selection event;
    None when nothing usable was clicked. The matrix puts the predicted class on x and the true class on y."""
    points = (selection or {}).get("points") or []
    for point in points:
        x, y = point.get("x"), point.get("y")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            return int(y), int(x)
    return None


def page_of(items: list[int], page: int, per_page: int = PER_PAGE) -> tuple[list[int], int, int]:
    """(the items on 1-based ``page``, clamped into range; that page; the number of pages)."""
    pages = max(1, math.ceil(len(items) / per_page))
    page = min(max(1, page), pages)
    return items[(page - 1) * per_page : page * per_page], page, pages


def top_k(probs: torch.Tensor, k: int = 3) -> list[tuple[int, float]]:
    values, classes = probs.topk(k)
    return list(zip(classes.tolist(), values.tolist()))


def header_line(preds: RunPredictions) -> str:
    total = len(preds.labels)
    return f"{len(preds.misclassified):,} of {total:,} test images misclassified ({preds.accuracy:.2%} accuracy)"


@dataclass(frozen=True)
class ErrorOverlap:
    both: torch.Tensor  # indices both runs get wrong
    only_first: torch.Tensor
    only_second: torch.Tensor


def compare_errors(first: RunPredictions, second: RunPredictions) -> ErrorOverlap:
    if not torch.equal(first.labels, second.labels):
        raise ValueError("the two runs' predictions are over different test sets")
    wrong_first = first.predicted != first.labels
    wrong_second = second.predicted != second.labels

    def where(mask: torch.Tensor) -> torch.Tensor:
        return mask.nonzero().flatten()

    return ErrorOverlap(where(wrong_first & wrong_second), where(wrong_first & ~wrong_second),
                        where(~wrong_first & wrong_second))
