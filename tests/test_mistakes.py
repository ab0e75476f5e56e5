import pytest
import torch

from digitlab.dashboard.mistakes import (
    ErrorFilter,
    cell_from_selection,
    compare_errors,
    filter_errors,
    header_line,
    page_of,
    top_k,
)
from digitlab.predict import RunPredictions


def make_predictions(rows):
    """rows: (true label, predicted class, confidence) -> predictions with that confidence on the predicted class."""
    probs = torch.zeros(len(rows), 10)
    labels = torch.tensor([true for true, _, _ in rows])
    for i, (true, predicted, confidence) in enumerate(rows):
        probs[i] = (1 - confidence) / 9
        probs[i, predicted] = confidence
    return RunPredictions(probs, labels)


PREDS = make_predictions([
    (3, 3, 0.99),  # 0: right
    (3, 5, 0.95),  # 1: confident mistake
    (7, 1, 0.40),  # 2: unsure mistake
    (3, 5, 0.60),  # 3
    (9, 4, 0.80),  # 4
    (1, 1, 0.97),  # 5: right
])


def test_only_misclassified_images_are_listed():
    assert sorted(filter_errors(PREDS, sort="index")) == [1, 2, 3, 4]


def test_sorting_both_ways_and_in_test_order():
    assert filter_errors(PREDS, sort="confident") == [1, 4, 3, 2]
    assert filter_errors(PREDS, sort="unsure") == [2, 3, 4, 1]
    assert filter_errors(PREDS, sort="index") == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown sort"):
        filter_errors(PREDS, sort="random")


def test_filters_by_true_and_predicted_class_and_confidence():
    assert filter_errors(PREDS, ErrorFilter(true_class=3), "index") == [1, 3]
    assert filter_errors(PREDS, ErrorFilter(predicted_class=5), "index") == [1, 3]
    assert filter_errors(PREDS, ErrorFilter(true_class=3, predicted_class=4), "index") == []
    assert filter_errors(PREDS, ErrorFilter(min_confidence=0.5, max_confidence=0.9), "index") == [3, 4]


def test_restricting_to_a_subset():
    assert filter_errors(PREDS, sort="index", among=torch.tensor([2, 4])) == [2, 4]


def test_a_confusion_cell_click_becomes_a_true_predicted_filter():
    # Plotly reports x = predicted column, y = true row.
    assert cell_from_selection({"points": [{"x": 5, "y": 3, "curve_number": 2}]}) == (3, 5)
    assert cell_from_selection({"points": []}) is None
    assert cell_from_selection(None) is None
    assert cell_from_selection({"points": [{"x": None, "y": 3}]}) is None
    true, predicted = cell_from_selection({"points": [{"x": 5.0, "y": 3.0}]})
    assert filter_errors(PREDS, ErrorFilter(true, predicted), "index") == [1, 3]


def test_paging():
    items = list(range(50))
    assert page_of(items, 1, 24) == (list(range(24)), 1, 3)
    assert page_of(items, 3, 24) == ([48, 49], 3, 3)
    assert page_of(items, 9, 24)[1:] == (3, 3)  # clamped
    assert page_of([], 1, 24) == ([], 1, 1)


def test_top_k_and_header():
    assert top_k(PREDS.probs[1], 1) == [(5, pytest.approx(0.95))]
    assert [digit for digit, _ in top_k(PREDS.probs[2], 3)][0] == 1
    assert header_line(PREDS) == "4 of 6 test images misclassified (33.33% accuracy)"


def test_errors_of_two_runs_compared():
    other = make_predictions([(3, 3, 0.9), (3, 5, 0.9), (7, 7, 0.9), (3, 3, 0.9), (9, 4, 0.9), (1, 2, 0.9)])
    overlap = compare_errors(PREDS, other)
    assert overlap.both.tolist() == [1, 4]
    assert overlap.only_first.tolist() == [2, 3]
    assert overlap.only_second.tolist() == [5]
    with pytest.raises(ValueError):
        compare_errors(PREDS, make_predictions([(0, 0, 0.9)] * 6))
