"""IBM's granite-common intrinsic test data (tests/data/granite-intrinsics-conformance)."""

from __future__ import annotations

import json
from typing import Any

from alora_serve.engine.types import StepLogprobs, TokenLogprob
from alora_serve.intrinsics.call import Document, IntrinsicRequest
from alora_serve.intrinsics.io_config import IOConfig, load_io_config
from tests.support.conversations import DATA as TEST_DATA

DATA = TEST_DATA / "granite-intrinsics-conformance"

# input_json/<name> -> (io.yaml, input_args/<file> or None, test_canned_input/<case>)
REWRITE_CASES = {
    "answer_relevance_classifier": ("answer_relevance_classifier", None),
    "answer_relevance_rewriter": ("answer_relevance_rewriter", "answer_relevance_rewriter"),
    "answerable": ("answerability", None),
    "unanswerable": ("answerability", None),
    "simple": ("answerability", None),
    "extra_params": ("answerability", None),
    "certainty": ("certainty", None),
    "citations": ("citations", None),
    "context_relevance": ("context_relevance", "context_relevance"),
    "hallucination": ("hallucination", None),
    "instruction": ("instruction", "instruction"),
    "rewrite": ("rewrite", None),
}
CANNED_NAMES = {
    name: f"answerability_{name}"
    for name in ("answerable", "unanswerable", "simple", "extra_params")
}

# test_canned_output case -> io.yaml
OUTPUT_CASES = {
    "answerability_answerable": "answerability",
    "answerability_unanswerable": "answerability",
    "citations": "citations",
    "context_relevance": "context_relevance",
    "hallucination": "hallucination",
    "rewrite": "rewrite",
}


def read_json(*parts: str) -> Any:
    return json.loads(DATA.joinpath(*parts).read_text())


def io_config(name: str) -> IOConfig:
    return load_io_config(DATA / "input_yaml" / f"{name}.yaml")


def as_intrinsic_request(openai_request: dict) -> IntrinsicRequest:
    """A chat-completion request as granite-common's tests send it -> our request."""
    documents = (openai_request.get("extra_body") or {}).get("documents") or []
    return IntrinsicRequest(
        messages=[{"role": m["role"], "content": m["content"]} for m in openai_request["messages"]],
        documents=[Document(doc_id=d["doc_id"], text=d["text"]) for d in documents],
    )


def canned_request(name: str) -> tuple[IOConfig, IntrinsicRequest, dict, dict]:
    """(io config, our request from input_json, its arguments, the rewritten request IBM
    expects)."""
    yaml_name, args_name = REWRITE_CASES[name]
    arguments = read_json("input_args", f"{args_name}.json") if args_name else {}
    request = as_intrinsic_request(read_json("input_json", f"{name}.json"))
    expected = read_json("test_canned_input", f"{CANNED_NAMES.get(name, name)}.json")
    return io_config(yaml_name), request, arguments, expected


def openai_logprobs(logprobs: dict | None) -> list[StepLogprobs]:
    """Logprobs in the OpenAI chat-completion shape (``{"content": [...]}``), which carries
    no token ids (-1 here)."""
    return [
        StepLogprobs(
            chosen=TokenLogprob(-1, entry["token"], entry["logprob"]),
            top=tuple(
                TokenLogprob(-1, alt["token"], alt["logprob"])
                for alt in entry.get("top_logprobs") or ()
            ),
        )
        for entry in (logprobs or {}).get("content") or ()
    ]
