"""A RAG pipeline built from intrinsics (docs/intrinsics.md):

1. query_rewrite turns the last user turn into a stand-alone question (for retrieval);
2. the base model writes the answer while answerability judges the question, both on
   the same conversation prefix;
3. citations and hallucination_detection check the answer in one composed call.

On the embedded model answerability is a trained adapter that ships in the package
(docs/intrinsics-quality.md); the others are seeded stand-ins: every step runs for real
and every result is schema-valid, but their judgements are noise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from alora_serve.engine.types import ChatMessage, SamplingOptions
from alora_serve.intrinsics.call import (
    Document,
    IntrinsicRequest,
    IntrinsicResult,
    IntrinsicsCall,
)
from alora_serve.intrinsics.rewrite import documents_message
from alora_serve.intrinsics.runner import IntrinsicRunner

PIPELINE_INTRINSICS = ("query_rewrite", "answerability", "citations", "hallucination_detection")

EXAMPLE_DOCUMENTS = [
    Document(
        doc_id="rivers",
        text=(
            "The Nile is about 6,650 km long and flows north into the Mediterranean Sea. "
            "It has two major tributaries, the White Nile and the Blue Nile. "
            "The Amazon carries more water than any other river on Earth."
        ),
    ),
    Document(
        doc_id="dams",
        text=(
            "The Aswan High Dam was completed in 1970. "
            "It controls the Nile's annual flood and generates hydroelectric power."
        ),
    ),
]
EXAMPLE_CONVERSATION = [
    ChatMessage(role="user", content="Which river flows into the Mediterranean?"),
    ChatMessage(role="assistant", content="The Nile flows north into the Mediterranean Sea."),
    ChatMessage(role="user", content="How long is it, and what controls its flood?"),
]


@dataclass(frozen=True)
class PipelineResult:
    rewritten_question: str
    answer: str
    answerability: dict[str, Any]
    citations: list[dict[str, Any]]
    hallucinations: list[dict[str, Any]]
    steps: dict[str, IntrinsicResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rewritten_question": self.rewritten_question,
            "answer": self.answer,
            "answerability": self.answerability,
            "citations": self.citations,
            "hallucinations": self.hallucinations,
            "usage": {
                name: {
                    "prompt_tokens": step.usage.prompt_tokens,
                    "reused_prompt_tokens": step.usage.reused_prompt_tokens,
                    "generated_tokens": step.usage.generated_tokens,
                    "seconds": round(step.timings.total_s, 3),
                }
                for name, step in self.steps.items()
            },
        }


async def rag_pipeline(
    runner: IntrinsicRunner,
    conversation: list[ChatMessage],
    documents: list[Document],
    tenant: str = "default",
    answer_tokens: int = 64,
) -> PipelineResult:
    question = IntrinsicRequest(messages=conversation, documents=documents)
    rewrite = await runner.run("query_rewrite", question, tenant)
    # A real deployment would retrieve documents for the rewritten question here.
    answer, answerability = await asyncio.gather(
        _answer(runner, conversation, documents, answer_tokens),
        runner.run("answerability", question, tenant),
    )
    answered = IntrinsicRequest(
        messages=[*conversation, ChatMessage(role="assistant", content=answer)],
        documents=documents,
    )
    checks = IntrinsicsCall(
        intrinsics=["citations", "hallucination_detection"], request=answered, tenant=tenant
    )
    citations, hallucinations = await runner.run_many(checks)
    return PipelineResult(
        rewritten_question=rewrite.result["rewritten_question"],
        answer=answer,
        answerability=answerability.result,
        citations=citations.result,
        hallucinations=hallucinations.result,
        steps={r.name: r for r in (rewrite, answerability, citations, hallucinations)},
    )


async def _answer(
    runner: IntrinsicRunner, conversation: list[ChatMessage], documents: list[Document], tokens: int
) -> str:
    """The base model's answer, with the documents in front as the intrinsics see them."""
    messages = (
        [documents_message(documents, "string"), *conversation] if documents else conversation
    )
    generation = await runner.engine.chat(messages, SamplingOptions(max_tokens=tokens))
    # An empty answer has no sentences to check; the pipeline needs at least one.
    return generation.text.strip() or "I do not know."


async def run_example(library: str | None, progress=print) -> PipelineResult:
    """Start an engine with the pipeline's intrinsics and run the example conversation."""
    from alora_serve.engine import Engine, EngineConfig
    from alora_serve.intrinsics.catalog import Catalog
    from alora_serve.intrinsics.embedded_library import embedded_library
    from alora_serve.model import resolve_model
    from alora_serve.paths import cache_root

    checkpoint = resolve_model(None)
    if library is None:
        progress("preparing the embedded intrinsics (stand-ins made on the first run only)")
        root = cache_root() / "demo-intrinsics"
        library, _ = embedded_library(checkpoint, root, PIPELINE_INTRINSICS)
    catalog = Catalog.from_library(library, checkpoint.name)
    progress("starting the engine (about a minute on CPU)")
    engine = await Engine.start(EngineConfig(), catalog.adapters())
    try:
        progress("running: query_rewrite -> answer + answerability -> citations, hallucinations")
        return await rag_pipeline(
            IntrinsicRunner(engine, catalog), EXAMPLE_CONVERSATION, EXAMPLE_DOCUMENTS
        )
    finally:
        await engine.shutdown()
