"""The built-in definitions: they load, and their result schemas have the documented shapes
(facts file §6)."""

from __future__ import annotations

import jsonschema
import pytest

from alora_serve.intrinsics.builtins import builtin_config, builtin_description, builtin_names

EXAMPLES = {
    "answerability": {"answerability_likelihood": 0.9},
    "uncertainty": {"certainty": 0.55},
    "requirement_check": {"requirement_likelihood": 0.1},
    "context_relevance": {"context_relevance": 0.5},
    "query_rewrite": {"rewritten_question": "How long is the Nile?"},
    "citations": [
        {
            "response_begin": 0,
            "response_end": 21,
            "response_text": "It is 6,650 km long. ",
            "citation_doc_id": "a",
            "citation_begin": 0,
            "citation_end": 27,
            "citation_text": "The Nile is 6,650 km long. ",
        }
    ],
    "hallucination_detection": [
        {
            "response_begin": 0,
            "response_end": 21,
            "response_text": "It is 6,650 km long. ",
            "faithfulness_likelihood": 1.0,
            "explanation": "The document says so.",
        }
    ],
}
WRONG = {
    "answerability": {"answerability_likelihood": "answerable"},
    "uncertainty": {"certainty": 7},
    "citations": [{"response_begin": 0}],
}


def test_the_seven_builtins_exist() -> None:
    assert builtin_names() == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_result_schema_accepts_the_documented_shape(name) -> None:
    config = builtin_config(name)
    jsonschema.validate(EXAMPLES[name], config.result_schema)
    assert builtin_description(name)
    if name in WRONG:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(WRONG[name], config.result_schema)
