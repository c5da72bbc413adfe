"""IBM's own intrinsic outputs (granite-common test data) through our output processing.

The expected results were written by granite-common's tests, which compare after rounding
every float to 2 decimals; where the expected file holds such a rounded number we compare
at that precision, everywhere else to 1e-6.

Sentence offsets: the expected results of citations and hallucination carry d174a3f's
offsets into the *tagged* text (fixed upstream later). We reproduce them from the tagged
requests IBM sent (``sentences_of_tagged_text``) to check everything else exactly, and
check separately that our own offsets point into the caller's original text.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest

from alora_serve.intrinsics.output import process_output
from alora_serve.intrinsics.rewrite import rewrite_request
from alora_serve.intrinsics.sentences import sentences_of_tagged_text
from tests.support.granite_conformance import (
    OUTPUT_CASES,
    canned_request,
    io_config,
    openai_logprobs,
    read_json,
)

# IBM's hallucination model output says "partial"/"faithful" where its response format
# declares a boolean, so its expected results cannot match the derived result schema.
SCHEMA_BREAKING_UPSTREAM_DATA = {"hallucination"}
# test_canned_output case -> the input_json request it was made from
SOURCE_REQUESTS = {"citations": "citations", "hallucination": "hallucination"}


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


def _d174a3f_sentences(config, model_input: dict) -> dict:
    """Sentence tables as granite-common d174a3f decodes them from its tagged request."""
    messages = model_input["messages"]
    tables = {}
    for source, prefix in (config.sentence_boundaries or {}).items():
        if source == "last_message":
            text = messages[-2 if config.instruction else -1]["content"]
            tables[source] = sentences_of_tagged_text(text, prefix)
        else:
            tables[source] = []
            for document in model_input["extra_body"]["documents"]:
                tables[source] += sentences_of_tagged_text(
                    document["text"], prefix, len(tables[source]), document["doc_id"]
                )
    return tables


def _results(case: str, sentences: dict) -> list[tuple[Any, Any]]:
    config = io_config(OUTPUT_CASES[case])
    choices = read_json("test_canned_output", "model_output", f"{case}.json")["choices"]
    expected = read_json("test_canned_output", "expected_result", f"{case}.json")["choices"]
    assert len(choices) == len(expected)
    return [
        (
            process_output(
                config,
                choice["message"]["content"],
                openai_logprobs(choice.get("logprobs")),
                sentences,
            ),
            json.loads(wanted["message"]["content"]),
        )
        for choice, wanted in zip(choices, expected, strict=True)
    ]


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_model_output_becomes_expected_result(case: str) -> None:
    config = io_config(OUTPUT_CASES[case])
    model_input = read_json("test_canned_output", "model_input", f"{case}.json")
    for result, expected in _results(case, _d174a3f_sentences(config, model_input)):
        _assert_close(result, expected, case)
        if case not in SCHEMA_BREAKING_UPSTREAM_DATA:
            jsonschema.validate(result, config.result_schema)


@pytest.mark.parametrize("case", sorted(SOURCE_REQUESTS))
def test_our_offsets_point_into_the_original_text(case: str) -> None:
    """Same results from our own rewriting of the untagged request, except that offsets
    index the caller's text: ``original[begin:end] == text`` for every span."""
    config, request, arguments, _ = canned_request(SOURCE_REQUESTS[case])
    rewritten = rewrite_request(config, request, arguments)
    last_message = request.messages[-1].content
    documents = {d.doc_id: d.text for d in request.documents}
    for result, expected in _results(case, rewritten.sentences):
        assert len(result) == len(expected)
        for ours, theirs in zip(result, expected, strict=True):
            begin, end = ours["response_begin"], ours["response_end"]
            assert last_message[begin:end] == ours["response_text"] == theirs["response_text"]
            if "citation_doc_id" in ours:
                text = documents[ours["citation_doc_id"]]
                begin, end = ours["citation_begin"], ours["citation_end"]
                assert text[begin:end] == ours["citation_text"] == theirs["citation_text"]
            offsets = {k for k in ours if k.endswith(("_begin", "_end"))}
            assert {k: v for k, v in ours.items() if k not in offsets} == {
                k: v for k, v in theirs.items() if k not in offsets
            }
