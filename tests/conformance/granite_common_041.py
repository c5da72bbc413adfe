"""Running IBM's granite-common 0.4.1 (the installed package) next to our io.yaml handling:
its IntrinsicsRewriter and IntrinsicsResultProcessor on the same inputs as ours. A test
that calls them is skipped where granite-common is not installed; the comparisons with
its vendored data (tests/data/granite-common-0.4.1) run everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alora_serve.intrinsics.call import IntrinsicRequest
from alora_serve.intrinsics.schemas import Schema, inline_refs
from tests.support.conversations import DATA as TEST_DATA
from tests.support.conversations import mtrag_tasks

DATA = TEST_DATA / "granite-common-0.4.1"


def read_json(*parts: str) -> Any:
    return json.loads(DATA.joinpath(*parts).read_text())


def granite_common() -> Any:
    return pytest.importorskip("granite_common", reason="granite-common 0.4.1 is not installed")


def granite_request(request: IntrinsicRequest) -> dict:
    """Our request as a chat completion granite-common takes."""
    documents = [{"doc_id": d.doc_id, "text": d.text} for d in request.documents]
    return {
        "messages": [m.model_dump() for m in request.messages],
        "extra_body": {"documents": documents} if documents else {},
    }


def granite_rewrite(io_yaml: Path | dict, request: IntrinsicRequest, arguments: dict) -> dict:
    """granite-common's rewritten request, as JSON."""
    source = {"config_dict": io_yaml} if isinstance(io_yaml, dict) else {"config_file": io_yaml}
    rewriter = granite_common().IntrinsicsRewriter(**source)
    return rewriter.transform(granite_request(request), **arguments).model_dump()


def granite_results(io_yaml: Path | dict, response: dict, rewritten: dict) -> list[Any]:
    """granite-common's results (parsed) for each choice of a raw chat completion response."""
    source = {"config_dict": io_yaml} if isinstance(io_yaml, dict) else {"config_file": io_yaml}
    processor = granite_common().IntrinsicsResultProcessor(**source)
    request = granite_common().ChatCompletion.model_validate(rewritten)
    processed = processor.transform(response, request)
    return [json.loads(choice.message.content) for choice in processed.choices]


def without_sentence_bounds(schema: Schema) -> Schema:
    """A decoding schema without the sentence-number bounds we add (``maximum``,
    ``maxItems``); granite-common constrains only what the io.yaml says."""

    def strip(node: Any) -> Any:
        if isinstance(node, list):
            return [strip(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {k: strip(v) for k, v in node.items() if k not in ("maximum", "maxItems")}

    return strip(inline_refs(schema))


def rag_conversation() -> IntrinsicRequest:
    """A real MTRAG conversation: its turns, its reference answer as the last assistant
    turn, and its reference passages."""
    task = next(t for t in mtrag_tasks() if len(t["contexts"]) >= 2 and len(t["input"]) >= 3)
    roles = {"user": "user", "agent": "assistant"}
    turns = [{"role": roles[t["speaker"]], "content": t["text"]} for t in task["input"]]
    answer = {"role": "assistant", "content": task["targets"][0]["text"].strip()}
    documents = [{"doc_id": str(c["document_id"]), "text": c["text"]} for c in task["contexts"]]
    return IntrinsicRequest(messages=[*turns, answer], documents=documents)
