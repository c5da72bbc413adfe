"""IBM's own intrinsic outputs (granite-common test data) through our output processing.

The expected results were written by granite-common's tests, which compare after rounding
every float to 2 decimals; where the expected file holds such a rounded number we compare
at that precision, everywhere else to 1e-6.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from alora_serve.intrinsics.io_config import load_io_config
from alora_serve.intrinsics.output import openai_logprobs, process_output
from tests.support.conversations import SHARED

DATA = SHARED / "data" / "granite-intrinsics-conformance"
IO_YAML = {
    "answerability_answerable": "answerability",
    "answerability_unanswerable": "answerability",
    "context_relevance": "context_relevance",
    "rewrite": "rewrite",
}


def _load(kind: str, case: str) -> dict:
    return json.loads((DATA / "test_canned_output" / kind / f"{case}.json").read_text())


def _assert_close(actual: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), where
        for key in expected:
            _assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        rounded_upstream = round(expected, 2) == expected
        tolerance = 0.005 if rounded_upstream else 1e-6
        assert math.isclose(actual, expected, abs_tol=tolerance), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, where


@pytest.mark.parametrize("case", sorted(IO_YAML))
def test_model_output_becomes_expected_result(case: str) -> None:
    config = load_io_config(DATA / "input_yaml" / f"{IO_YAML[case]}.yaml")
    choices = _load("model_output", case)["choices"]
    expected = _load("expected_result", case)["choices"]
    assert len(choices) == len(expected)
    for choice, wanted in zip(choices, expected, strict=True):
        result = process_output(
            config, choice["message"]["content"], openai_logprobs(choice.get("logprobs"))
        )
        _assert_close(result, json.loads(wanted["message"]["content"]), case)


@pytest.mark.parametrize("name", ["answerability", "certainty", "context_relevance", "rewrite"])
def test_conformance_io_yaml_loads(name: str) -> None:
    config = load_io_config(DATA / "input_yaml" / f"{name}.yaml")
    assert config.response_format is not None
    assert config.wants_logprobs == (name != "rewrite")
