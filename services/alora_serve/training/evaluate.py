"""``alora-serve eval``: a classifying intrinsic over labelled examples, through the
served system (its gRPC API), next to two baselines in the same run: the majority class
of the training labels (those found, not augmented), and the base model asked the same
question without the adapter, constrained to the same labels (through the
OpenAI-compatible API)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from alora_serve.client import AloraClient, result_value
from alora_serve.intrinsics.rewrite import documents_message
from alora_serve.training.examples import Example
from alora_serve.training.metrics import (
    Scored,
    calibration,
    classification,
    reliability_plot,
)


@dataclass(frozen=True)
class Classifier:
    """A classifying intrinsic as eval sees it: the label whose likelihood it returns,
    the other one, and what the base model is asked after the conversation (formatted
    with ``labels`` and the example's arguments)."""

    positive: str
    negative: str
    base_question: str

    @property
    def labels(self) -> tuple[str, str]:
        return self.positive, self.negative

    def label_for(self, likelihood: float) -> str:
        return self.positive if likelihood >= 0.5 else self.negative

    def question(self, arguments: dict[str, str]) -> str:
        """What the base model is asked about an example with these arguments."""
        return self.base_question.format(labels=" or ".join(self.labels), **arguments)


CLASSIFIERS = {
    # answerability has no instruction of its own: its adapter is invoked by its role alone
    "answerability": Classifier(
        "answerable",
        "unanswerable",
        "Can the last question above be answered from the documents given? "
        "Answer with one word: {labels}.",
    ),
    "context_relevance": Classifier(
        "relevant",
        "irrelevant",
        "DOCUMENT: {document_content}\n\nIs this document relevant to the last question "
        "above? Answer with one word: {labels}.",
    ),
}


@dataclass(frozen=True)
class Evaluation:
    intrinsic: str
    classifier: Classifier
    target: str  # gRPC host:port
    url: str  # the HTTP API (its OpenAI-compatible routes)
    timeout_s: float = 120.0


Progress = Callable[[str], None]


def evaluate(
    evaluation: Evaluation,
    examples: Sequence[Example],
    training_labels: Sequence[str | None],
    out: Path,
    progress: Progress = print,
) -> dict:
    """Scores of the intrinsic and both baselines, overall and per group; writes
    ``out/eval.json`` and ``out/reliability.png``."""
    majority = Counter(label for label in training_labels if label).most_common(1)[0][0]
    systems: dict[str, list[Scored]] = {"intrinsic": [], "base model": [], "majority": []}
    with AloraClient(evaluation.target, timeout_s=evaluation.timeout_s) as client:
        base_model = httpx.get(f"{evaluation.url}/health", timeout=30).json()["model"]
        for i, example in enumerate(examples, 1):
            systems["intrinsic"].append(_intrinsic(client, evaluation, example))
            systems["base model"].append(_base_model(evaluation, base_model, example))
            systems["majority"].append(Scored(example.label, majority))
            if i % 10 == 0 or i == len(examples):
                progress(f"evaluated {i}/{len(examples)}")
    report = {
        "intrinsic": evaluation.intrinsic,
        "examples": len(examples),
        "labels": list(evaluation.classifier.labels),
        "majority_class": majority,
        "overall": _scores(systems, evaluation),
        "by_group": {
            group: _scores(
                {
                    name: [s for s, e in zip(sc, examples, strict=True) if e.group == group]
                    for name, sc in systems.items()
                },
                evaluation,
            )
            for group in sorted({e.group for e in examples if e.group})
        },
    }
    report["predictions"] = [
        {"source": e.source, "label": e.label, "documents": len(e.request.documents)}
        | {name: {"predicted": s[i].predicted, "likelihood": s[i].likelihood}
           for name, s in systems.items()}
        for i, e in enumerate(examples)
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    calibrated = {n: s["calibration"] for n, s in report["overall"].items() if "calibration" in s}
    reliability_plot(calibrated, out / "reliability.png")
    return report


def _scores(systems: dict[str, list[Scored]], evaluation: Evaluation) -> dict[str, Any]:
    scores = {}
    for name, scored in systems.items():
        figures = classification(scored, evaluation.classifier.labels)
        if any(s.likelihood is not None for s in scored):
            figures["calibration"] = calibration(scored, evaluation.classifier.positive)
        scores[name] = figures
    return scores


def _intrinsic(client: AloraClient, evaluation: Evaluation, example: Example) -> Scored:
    request = example.request
    result = client.run_intrinsic(
        evaluation.intrinsic,
        [(m.role, m.content) for m in request.messages],
        [d.model_dump() for d in request.documents],
        example.arguments,
    )
    likelihood = _the_number(result_value(result))
    predicted = evaluation.classifier.label_for(likelihood)
    return Scored(example.label, predicted, likelihood)


def _the_number(value: Any) -> float:
    """The likelihood in an intrinsic's result (its one number, e.g.
    ``{"answerability_likelihood": 0.8}``)."""
    numbers = [v for v in _leaves(value) if isinstance(v, int | float)]
    if len(numbers) != 1:
        raise ValueError(f"expected one likelihood in the result, got {value!r}")
    return float(numbers[0])


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _base_model(evaluation: Evaluation, base_model: str, example: Example) -> Scored:
    """The base model's likelihood of the positive label against the negative one: the
    probability of each label's text written after the question (each forced in turn
    by constrained decoding; vLLM's logprobs are the model's own, before the constraint),
    normalised over the two; it picks the likelier."""
    request = example.request
    messages = [m.model_dump() for m in request.messages]
    if request.documents:
        messages.insert(0, documents_message(request.documents, "string").model_dump())
    question = evaluation.classifier.question(example.arguments)
    messages.append({"role": "user", "content": question})
    positive, negative = (
        _label_probability(evaluation, base_model, messages, label)
        for label in evaluation.classifier.labels
    )
    likelihood = positive / (positive + negative) if positive + negative > 0 else 0.5
    predicted = evaluation.classifier.label_for(likelihood)
    return Scored(example.label, predicted, likelihood)


def _label_probability(
    evaluation: Evaluation, base_model: str, messages: list[dict], label: str
) -> float:
    body = {
        "model": base_model,
        "messages": messages,
        "structured_outputs": {"choice": [label]},
        "max_completion_tokens": 16,
        "logprobs": True,
    }
    answer = httpx.post(
        f"{evaluation.url}/v1/chat/completions", json=body, timeout=evaluation.timeout_s
    )
    answer.raise_for_status()
    steps = answer.json()["choices"][0]["logprobs"]["content"]
    return math.exp(sum(step["logprob"] for step in steps))
