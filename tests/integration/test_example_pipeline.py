"""The documented example pipeline (docs/intrinsics.md) on the embedded model."""

from __future__ import annotations

import jsonschema
import pytest

from alora_serve.examples.rag_pipeline import (
    EXAMPLE_CONVERSATION,
    EXAMPLE_DOCUMENTS,
    rag_pipeline,
)

pytestmark = pytest.mark.engine


async def test_rag_pipeline_runs_every_step(runner) -> None:
    result = await rag_pipeline(runner, EXAMPLE_CONVERSATION, EXAMPLE_DOCUMENTS, answer_tokens=32)
    catalog = runner.catalog
    jsonschema.validate(
        {"rewritten_question": result.rewritten_question},
        catalog.get("query_rewrite").config.result_schema,
    )
    jsonschema.validate(result.answerability, catalog.get("answerability").config.result_schema)
    jsonschema.validate(result.citations, catalog.get("citations").config.result_schema)
    jsonschema.validate(
        result.hallucinations, catalog.get("hallucination_detection").config.result_schema
    )
    assert result.answer
    for span in result.hallucinations:
        assert result.answer[span["response_begin"] : span["response_end"]] == span["response_text"]
    summary = result.to_dict()
    assert set(summary["usage"]) == {
        "query_rewrite",
        "answerability",
        "citations",
        "hallucination_detection",
    }
    # answerability ran on the conversation query_rewrite had already stored.
    assert summary["usage"]["answerability"]["reused_prompt_tokens"] > 0
