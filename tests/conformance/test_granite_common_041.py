"""Our io.yaml handling against IBM's granite-common 0.4.1 itself (the installed package):
the same rewritten requests (messages, documents, decoding schema, logprobs) and the same
results, for the built-in intrinsics, the newer ones (query_clarification,
answer_relevance) and gpt-oss output. Where we differ on purpose, the test says so."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import yaml

from alora_serve.intrinsics.builtins import BUILTIN_DIR, builtin_config, builtin_names
from alora_serve.intrinsics.io_config import IOConfigError, load_io_config
from alora_serve.intrinsics.output import process_output
from alora_serve.intrinsics.rewrite import instruction_fields, rewrite_request
from tests.conformance.granite_common_041 import (
    DATA,
    granite_request,
    granite_results,
    granite_rewrite,
    rag_conversation,
    read_json,
    without_sentence_bounds,
)
from tests.support.granite_conformance import DATA as CONFORMANCE_DATA
from tests.support.granite_conformance import (
    OUTPUT_CASES,
    as_intrinsic_request,
    canned_request,
    openai_logprobs,
)
from tests.support.granite_conformance import read_json as conformance_json


def json_content(choice: dict):
    return json.loads(choice["message"]["content"])


NEWER = ["answer_relevance_classifier", "answer_relevance_rewriter", "query_clarification"]
ARGUMENTS = {"answer_relevance_rewriter": "answer_relevance_rewriter"}  # input_args/<file>


def assert_same_rewrite(ours, theirs: dict) -> None:
    """Messages, documents, decoding schema, logprobs and parameters as granite-common's."""
    assert [m.model_dump() for m in ours.messages] == [
        {"role": m["role"], "content": m["content"]} for m in theirs["messages"]
    ]
    extra_body = theirs.get("extra_body") or {}
    assert [d.model_dump() for d in ours.documents] == [
        {"doc_id": d["doc_id"], "text": d["text"]} for d in extra_body.get("documents") or []
    ]
    structured = (extra_body.get("structured_outputs") or {}).get("json")
    if structured is None:
        assert ours.response_schema is None
    else:  # we also bound sentence numbers to the sentences tagged (see sentences.py)
        assert without_sentence_bounds(ours.response_schema) == without_sentence_bounds(structured)
    assert bool(theirs.get("logprobs")) == (ours.top_logprobs is not None)
    assert theirs.get("top_logprobs") == ours.top_logprobs
    for key, value in ours.parameters.items():
        assert theirs[key] == value, key


def newer_case(name: str):
    io_yaml = DATA / "input_yaml" / f"{name}.yaml"
    request = as_intrinsic_request(read_json("input_json", f"{name}.json"))
    arguments = read_json("input_args", f"{ARGUMENTS[name]}.json") if name in ARGUMENTS else {}
    return io_yaml, request, arguments


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_rewrite_matches_granite_common(name: str) -> None:
    config, request = builtin_config(name), rag_conversation()
    arguments = dict.fromkeys(instruction_fields(config), "Answer from the documents.")
    theirs = granite_rewrite(BUILTIN_DIR / f"{name}.yaml", request, arguments)
    assert_same_rewrite(rewrite_request(config, request, arguments), theirs)


@pytest.mark.parametrize("name", NEWER)
def test_newer_intrinsic_rewrite_matches_ibms(name: str) -> None:
    io_yaml, request, arguments = newer_case(name)
    ours = rewrite_request(load_io_config(io_yaml), request, arguments)
    # IBM's own rewrite with its Hugging Face io.yaml; our answer_relevance io.yaml files
    # (the repository's last copies) lack the temperature 0.0 that one adds.
    canned = read_json("test_canned_input", f"{name}.json")
    assert_same_rewrite(dataclasses.replace(ours, parameters={}), canned)
    if name == "query_clarification":
        assert_same_rewrite(ours, canned)
    assert_same_rewrite(ours, granite_rewrite(io_yaml, request, arguments))


@pytest.mark.parametrize("name", NEWER)
def test_newer_intrinsic_output_matches_ibms(name: str) -> None:
    io_yaml, request, arguments = newer_case(name)
    ours = newer_results(name)
    expected = [
        json_content(c)
        for c in read_json("test_canned_output", "expected_result", f"{name}.json")["choices"]
    ]
    if name == "answer_relevance_classifier":
        ours = [with_granite_common_boolean_likelihood(result) for result in ours]
    assert ours == expected
    response = read_json("test_canned_output", "model_output", f"{name}.json")
    theirs = granite_results(io_yaml, response, granite_rewrite(io_yaml, request, arguments))
    assert theirs == expected


def newer_results(name: str) -> list:
    io_yaml, request, arguments = newer_case(name)
    config = load_io_config(io_yaml)
    sentences = rewrite_request(config, request, arguments).sentences
    response = read_json("test_canned_output", "model_output", f"{name}.json")
    return [
        process_output(
            config, c["message"]["content"], openai_logprobs(c.get("logprobs")), sentences
        )
        for c in response["choices"]
    ]


def with_granite_common_boolean_likelihood(result: dict) -> dict:
    """Deliberate difference: granite-common spells a boolean category as Python does
    ("True"), so the alternative token "true" never counts and a judgment "false" scores
    exactly 0.0; we read alternatives as JSON spells them: P(true) / (P(true) + P(false)),
    here from the tokens "true" and "t" (which begins "true" too)."""
    response = read_json("test_canned_output", "model_output", "answer_relevance_classifier.json")
    tokens = response["choices"][0]["logprobs"]["content"]
    judgment = next(t for t in tokens if t["token"] == "false")
    weight = {t["token"]: math.exp(t["logprob"]) for t in judgment["top_logprobs"]}
    p_true = weight["true"] + weight["t"]
    assert result["answer_relevance_likelihood"] == pytest.approx(
        p_true / (p_true + weight["false"])
    )
    return {**result, "answer_relevance_likelihood": 0.0}


def test_gpt_oss_likelihood_uses_the_message_tokens() -> None:
    """gpt-oss logprobs begin with <|channel|>final<|message|>, which the content lacks.
    granite-common needs ``logprobs_workaround: true`` for them; we align either way."""
    response = read_json("test_canned_output", "model_output", "gpt_oss_answerability.json")
    [expected] = [
        json_content(c)
        for c in read_json("test_canned_output", "expected_result", "gpt_oss_answerability.json")[
            "choices"
        ]
    ]
    [choice] = response["choices"]
    tokens = openai_logprobs(choice["logprobs"])
    answerability = yaml.safe_load((BUILTIN_DIR / "answerability.yaml").read_text())
    workaround = {**answerability, "logprobs_workaround": True}
    for config in (builtin_config("answerability"), load_io_config(workaround)):
        result = process_output(config, choice["message"]["content"], tokens)
        assert result == {"answerability_likelihood": pytest.approx(0.9669141293813437)}
        assert result == pytest.approx(expected)
    rewritten = granite_rewrite(answerability, rag_conversation(), {})
    assert granite_results(workaround, response, rewritten) == [pytest.approx(expected)]
    with pytest.raises(ValueError, match="no token at that position"):
        granite_results(answerability, response, rewritten)


def test_structured_outputs_in_parameters_is_the_response_format() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    io_yaml = {
        "model": None,
        "response_format": None,
        "transformations": None,
        "parameters": {
            "max_completion_tokens": 64,
            "extra_body": {"structured_outputs": {"json": schema}},
        },
    }
    config = load_io_config(io_yaml)
    assert config.response_format == schema and config.result_schema == schema
    request = rag_conversation()
    ours = rewrite_request(config, request)
    assert ours.response_schema == schema and ours.extra_body == {}
    # granite-common replaces structured_outputs with the response format where both are.
    both = {**io_yaml, "response_format": '{"type": "string"}'}
    assert load_io_config(both).response_format == {"type": "string"}
    assert_same_rewrite(ours, granite_rewrite(io_yaml, request, {}))
    assert_same_rewrite(
        rewrite_request(load_io_config(both), request), granite_rewrite(both, request, {})
    )


def test_structured_outputs_we_cannot_decode_fail_at_load() -> None:
    io_yaml = {
        "model": None,
        "response_format": None,
        "transformations": None,
        "parameters": {"extra_body": {"structured_outputs": {"choice": ["yes", "no"]}}},
    }
    with pytest.raises(IOConfigError, match=r"only 'json' .* got \['choice'\]"):
        load_io_config(io_yaml)
    granite_common_accepts = granite_rewrite(io_yaml, rag_conversation(), {})
    assert granite_common_accepts["extra_body"]["structured_outputs"] == {"choice": ["yes", "no"]}


@pytest.mark.parametrize("style", ["string", "json"])
def test_documents_as_a_message_match_granite_common(style: str) -> None:
    io_yaml = {"model": None, "response_format": None, "transformations": None}
    io_yaml |= {"docs_as_message": style, "sentence_boundaries": {"documents": "c"}}
    request = rag_conversation()
    ours = rewrite_request(load_io_config(io_yaml), request)
    if style == "json":  # granite-common's Document dumps text before doc_id
        assert ours.messages[0].content.startswith('[{"text": "<c0> ')
    assert_same_rewrite(ours, granite_rewrite(io_yaml, request, {}))


def test_documents_as_roles_fail_at_load_with_the_reason() -> None:
    io_yaml = {"model": None, "response_format": None, "transformations": None}
    io_yaml["docs_as_message"] = "roles"
    with pytest.raises(IOConfigError, match=r"'roles' .*\(system, user, assistant only\)"):
        load_io_config(io_yaml)
    theirs = granite_rewrite(io_yaml, rag_conversation(), {})
    assert theirs["messages"][0]["role"].startswith("document ")


def test_newer_io_yaml_files_load() -> None:
    for name in NEWER:
        config = load_io_config(DATA / "input_yaml" / f"{name}.yaml")
        assert config.response_format is not None
    assert instruction_fields(load_io_config(DATA / "input_yaml" / f"{NEWER[1]}.yaml")) == [
        "answer_relevance_category",
        "answer_relevance_analysis",
        "correction_method",
    ]
    assert granite_request(rag_conversation())["extra_body"]["documents"]


# test_canned_output case of the d174a3f data -> its input_json request
D174A3F_SOURCES = {
    "answerability_answerable": "answerable",
    "answerability_unanswerable": "unanswerable",
    "citations": "citations",
    "context_relevance": "context_relevance",
    "hallucination": "hallucination",
    "rewrite": "rewrite",
}


@pytest.mark.parametrize("case", sorted(D174A3F_SOURCES))
def test_ibm_outputs_give_granite_common_041_results(case: str) -> None:
    """The older conformance data through granite-common 0.4.1, which (unlike d174a3f)
    reports sentence offsets into the original text, as we do: where sentences are
    separated by single spaces, as here, the results are the same."""
    config, request, arguments, _ = canned_request(D174A3F_SOURCES[case])
    io_yaml = CONFORMANCE_DATA / "input_yaml" / f"{OUTPUT_CASES[case]}.yaml"
    response = conformance_json("test_canned_output", "model_output", f"{case}.json")
    theirs = granite_results(io_yaml, response, granite_rewrite(io_yaml, request, arguments))
    sentences = rewrite_request(config, request, arguments).sentences
    ours = [
        process_output(
            config, c["message"]["content"], openai_logprobs(c.get("logprobs")), sentences
        )
        for c in response["choices"]
    ]
    assert ours == theirs
