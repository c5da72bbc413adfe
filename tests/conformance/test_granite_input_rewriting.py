"""Our request rewriting on granite-common's inputs vs the rewritten requests IBM's own
code produced (test_canned_input), on everything that does not depend on the chat
template: messages (instruction, sentence tags), documents, parameters, response format,
logprobs."""

from __future__ import annotations

import pytest

from alora_serve.intrinsics.rewrite import LIKELIHOOD_TOP_LOGPROBS, rewrite_request
from alora_serve.intrinsics.schemas import inline_refs, schema_nodes
from alora_serve.intrinsics.sentences import DecodeSentences
from tests.support.granite_conformance import REWRITE_CASES, canned_request


@pytest.mark.parametrize("name", sorted(REWRITE_CASES))
def test_rewrite_matches_ibm(name: str) -> None:
    config, request, arguments, expected = canned_request(name)
    rewritten = rewrite_request(config, request, arguments)

    assert [m.model_dump() for m in rewritten.messages] == [
        {"role": m["role"], "content": m["content"]} for m in expected["messages"]
    ]
    extra_body = expected.get("extra_body") or {}
    assert [d.model_dump() for d in rewritten.documents] == [
        {"doc_id": d["doc_id"], "text": d["text"]} for d in extra_body.get("documents", [])
    ]
    for key, value in rewritten.parameters.items():
        assert expected[key] == value, key
    assert bool(expected.get("logprobs")) == (rewritten.top_logprobs is not None)
    if rewritten.top_logprobs is not None:
        assert expected["top_logprobs"] == rewritten.top_logprobs == LIKELIHOOD_TOP_LOGPROBS
    _assert_same_response_format(config, rewritten, extra_body.get("guided_json"))


def _assert_same_response_format(config, rewritten, guided_json) -> None:
    """Equal, except that we also bound sentence numbers to the sentences tagged."""
    if guided_json is None:
        assert rewritten.response_schema is None
        return
    ours = inline_refs(rewritten.response_schema)
    theirs = inline_refs(guided_json)
    if not rewritten.sentences:
        assert ours == theirs
        return
    for rule in config.rules():
        if not isinstance(rule, DecodeSentences) or rule.source not in rewritten.sentences:
            continue
        for node in schema_nodes(ours, rule.input_path):
            numbers = node.get("items", node)
            assert numbers["maximum"] == len(rewritten.sentences[rule.source]) - 1
    assert _without_bounds(ours) == _without_bounds(theirs)


def _without_bounds(schema):
    if isinstance(schema, list):
        return [_without_bounds(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: _without_bounds(v) for k, v in schema.items() if k not in ("maximum", "maxItems")}


def test_citations_tags_every_document_sentence_once() -> None:
    config, request, arguments, _ = canned_request("citations")
    rewritten = rewrite_request(config, request, arguments)
    table = rewritten.sentences["documents"]
    tagged = " ".join(d.text for d in rewritten.documents)
    for number, sentence in enumerate(table):
        assert tagged.count(f"<c{number}> ") == 1
        source = next(d.text for d in request.documents if d.doc_id == sentence.document_id)
        assert source[sentence.begin : sentence.end] == sentence.text
    assert f"<c{len(table)}> " not in tagged
