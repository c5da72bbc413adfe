"""How well a classifying intrinsic does on labelled examples: accuracy, macro-F1, the
confusion matrix, and the calibration of its likelihood (Brier score, expected
calibration error, a reliability diagram)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Scored:
    label: str  # the truth
    predicted: str
    likelihood: float | None = None  # the model's probability of the positive class


def classification(scored: Sequence[Scored], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over ``labels`` and the confusion matrix (truth -> predicted ->
    count)."""
    if not scored:
        raise ValueError("nothing to score")
    confusion = {t: {p: 0 for p in labels} for t in labels}
    for item in scored:
        confusion[item.label][item.predicted] += 1
    f1s = []
    for label in labels:
        hits = confusion[label][label]
        predicted = sum(confusion[t][label] for t in labels)
        actual = sum(confusion[label].values())
        precision = hits / predicted if predicted else 0.0
        recall = hits / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if hits else 0.0)
    accuracy = sum(confusion[label][label] for label in labels) / len(scored)
    return {"accuracy": accuracy, "macro_f1": sum(f1s) / len(f1s), "confusion": confusion}


def calibration(scored: Sequence[Scored], positive: str) -> dict:
    """Brier score and expected calibration error of the likelihoods of ``positive``,
    with the reliability diagram's bins (equal widths)."""
    pairs = [(s.likelihood, s.label == positive) for s in scored if s.likelihood is not None]
    if not pairs:
        raise ValueError("no likelihoods to calibrate")
    brier = sum((p - float(y)) ** 2 for p, y in pairs) / len(pairs)
    bins = []
    for i in range(CALIBRATION_BINS):
        low, high = i / CALIBRATION_BINS, (i + 1) / CALIBRATION_BINS
        inside = [(p, y) for p, y in pairs if low <= p < high or (high == 1.0 and p == 1.0)]
        if inside:
            confidence = sum(p for p, _ in inside) / len(inside)
            frequency = sum(y for _, y in inside) / len(inside)
            bins.append(
                {"low": low, "high": high, "count": len(inside)}
                | {"confidence": confidence, "frequency": frequency}
            )
    ece = sum(b["count"] * abs(b["confidence"] - b["frequency"]) for b in bins) / len(pairs)
    return {"brier": brier, "ece": ece, "bins": bins}


def reliability_plot(calibrations: dict[str, dict], path: Path) -> None:
    """One reliability diagram with a line per system (those with likelihoods)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, figures in calibrations.items():
        bins = figures["bins"]
        axes.plot(
            [b["confidence"] for b in bins],
            [b["frequency"] for b in bins],
            marker="o",
            label=f"{name} (ECE {figures['ece']:.3f}, Brier {figures['brier']:.3f})",
        )
    axes.set(xlabel="predicted likelihood", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1))
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
