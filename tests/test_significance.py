import math

import pytest
import torch

from digitlab.predict import RunPredictions
from digitlab.significance import ComparisonError, exact_p_value, mcnemar


def test_exact_p_values_against_hand_computed_binomial_tails():
    # b=31, c=12: 2 * sum_{k<=12} C(43, k) / 2^43.
    assert exact_p_value(31, 12) == pytest.approx(0.0054015727, rel=1e-8)
    assert exact_p_value(12, 31) == exact_p_value(31, 12)
    # b=5, c=0: 2 * (1/2)^5.
    assert exact_p_value(5, 0) == 0.0625
    # No disagreement at all: nothing tells the runs apart.
    assert exact_p_value(0, 0) == 1.0
    # b=2, c=1: 2 * (1 + 3) / 8 = 1, capped at 1.
    assert exact_p_value(2, 1) == 1.0
    assert exact_p_value(20, 5) == pytest.approx(2 * sum(math.comb(25, k) for k in range(6)) / 2**25)


def predictions(correct: list[bool], fingerprint: str | None = "same") -> RunPredictions:
    labels = torch.arange(len(correct)) % 10
    predicted = torch.where(torch.tensor(correct), labels, (labels + 1) % 10)
    return RunPredictions(torch.nn.functional.one_hot(predicted, 10).float(), labels, fingerprint)


def test_counts_and_sentence():
    a = predictions([True] * 31 + [False] * 12 + [True] * 50)
    b = predictions([False] * 31 + [True] * 12 + [True] * 50)
    result = mcnemar(a, b, "cnn", "lenet")
    assert (result.b, result.c) == (31, 12)
    assert result.significant
    assert result.sentence == ("cnn is right on 31 images that lenet gets wrong, lenet on 12 that cnn gets wrong: "
                               "p = 0.005, a real difference")
    close = mcnemar(predictions([True, True, False]), predictions([False, True, True]), "cnn", "lenet")
    assert close.sentence.endswith("p = 1, could be chance")


def test_refuses_different_test_sets_and_a_run_against_itself():
    a = predictions([True, False], fingerprint="one")
    with pytest.raises(ComparisonError, match="different test sets"):
        mcnemar(a, predictions([True, True], fingerprint="other"))
    with pytest.raises(ComparisonError, match="compared with itself"):
        mcnemar(a, a, "cnn", "cnn")
    with pytest.raises(ComparisonError, match="compared with itself"):
        mcnemar(a, predictions([True, True], fingerprint="one"), same_run=True)
    with pytest.raises(ComparisonError, match="different test labels"):
        mcnemar(a, predictions([True, True, True], fingerprint="one"))
