"""Scores of a classifying intrinsic, against figures worked out by hand."""

from __future__ import annotations

import pytest

from alora_serve.training.metrics import Scored, calibration, classification

LABELS = ("yes", "no")


def test_accuracy_macro_f1_and_the_confusion_matrix() -> None:
    scored = [Scored("yes", "yes"), Scored("yes", "no"), Scored("no", "no"), Scored("no", "no")]
    figures = classification(scored, LABELS)
    assert figures["accuracy"] == 0.75
    assert figures["confusion"] == {"yes": {"yes": 1, "no": 1}, "no": {"yes": 0, "no": 2}}
    # yes: precision 1, recall 0.5 -> 2/3; no: precision 2/3, recall 1 -> 0.8
    assert figures["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_a_class_never_predicted_scores_zero_f1() -> None:
    figures = classification([Scored("yes", "no"), Scored("no", "no")], LABELS)
    assert figures["macro_f1"] == pytest.approx((0 + 2 / 3) / 2)


def test_brier_and_expected_calibration_error() -> None:
    scored = [Scored("yes", "yes", 0.9), Scored("no", "yes", 0.9), Scored("no", "no", 0.1)]
    figures = calibration(scored, "yes")
    assert figures["brier"] == pytest.approx((0.01 + 0.81 + 0.01) / 3)
    # bin [0.9, 1): confidence 0.9, frequency 0.5; bin [0.1, 0.2): 0.1 vs 0
    assert figures["ece"] == pytest.approx((2 * 0.4 + 1 * 0.1) / 3)
    assert [b["count"] for b in figures["bins"]] == [1, 2]


def test_a_likelihood_of_one_falls_in_the_last_bin() -> None:
    figures = calibration([Scored("yes", "yes", 1.0)], "yes")
    assert figures["bins"][0]["high"] == 1.0 and figures["ece"] == 0.0


def test_nothing_to_score_is_an_error() -> None:
    with pytest.raises(ValueError):
        classification([], LABELS)
    with pytest.raises(ValueError):
        calibration([Scored("yes", "yes")], "yes")
