"""Input processing: an intrinsic call -> the request its adapter is run on.

Follows granite-common's request rewriting (docs/notes/granite-common-intrinsics-io.md):
sentence tagging where ``sentence_boundaries`` asks for it, documents as a message where
``docs_as_message`` asks for it, the instruction appended as a new user message, the
response format for constrained decoding and top-10 logprobs where ``likelihood`` needs
them. Rendering into tokens (chat template, invocation) is the runner's job.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alora_serve.engine.types import ChatMessage
from alora_serve.intrinsics.call import Document, IntrinsicInputError, IntrinsicRequest
from alora_serve.intrinsics.io_config import IOConfig
from alora_serve.intrinsics.schemas import Schema, inline_refs
from alora_serve.intrinsics.sentences import DecodeSentences, Sentence, tag_sentences

LIKELIHOOD_TOP_LOGPROBS = 10
LAST_MESSAGE = "last_message"  # the instruction's field for the (tagged) last message
DOCUMENTS_PREAMBLE = "You have access to the following documents:\n\n"


@dataclass(frozen=True)
class RewrittenRequest:
    """The request as the adapter sees it, plus what output processing needs."""

    messages: tuple[ChatMessage, ...]
    documents: tuple[Document, ...]
    response_schema: dict[str, Any] | None
    top_logprobs: int | None
    parameters: Mapping[str, Any] = field(default_factory=dict)  # the request's top level
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # the io.yaml's, for vLLM
    sentences: Mapping[str, tuple[Sentence, ...]] = field(default_factory=dict)


def instruction_fields(config: IOConfig) -> list[str]:
    """The caller-supplied fields of the instruction template, in order of appearance."""
    if config.instruction is None:
        return []
    names = [name for _, name, _, _ in string.Formatter().parse(config.instruction) if name]
    return list(dict.fromkeys(n for n in names if n != LAST_MESSAGE))


def rewrite_request(
    config: IOConfig, request: IntrinsicRequest, arguments: Mapping[str, Any] | None = None
) -> RewrittenRequest:
    """The request the adapter runs on; ``arguments``: the values of the instruction's
    fields."""
    arguments = arguments or {}
    _check_arguments(config, arguments)
    messages, documents = list(request.messages), list(request.documents)
    sentences: dict[str, tuple[Sentence, ...]] = {}
    for source, prefix in (config.sentence_boundaries or {}).items():
        if source == "last_message":
            messages[-1], sentences[source] = _tag_message(messages[-1], prefix)
        else:
            documents, sentences[source] = _tag_documents(documents, prefix)
    if config.docs_as_message is not None and documents:
        messages.insert(0, documents_message(documents, config.docs_as_message))
        documents = []
    if config.instruction is not None:
        text = config.instruction.format(**arguments, **{LAST_MESSAGE: messages[-1].content})
        messages.append(ChatMessage(role="user", content=text))
    return RewrittenRequest(
        messages=tuple(messages),
        documents=tuple(documents),
        response_schema=_decoding_schema(config, sentences),
        top_logprobs=LIKELIHOOD_TOP_LOGPROBS if config.wants_logprobs else None,
        parameters=_top_level_parameters(config),
        extra_body=dict((config.parameters or {}).get("extra_body") or {}),
        sentences=sentences,
    )


def _top_level_parameters(config: IOConfig) -> dict[str, Any]:
    return {k: v for k, v in (config.parameters or {}).items() if k != "extra_body"}


def _decoding_schema(
    config: IOConfig, sentences: Mapping[str, Sequence[Sentence]]
) -> Schema | None:
    if config.response_format is None or not sentences:
        return config.response_format
    schema = inline_refs(config.response_format)
    for rule in config.rules():
        if isinstance(rule, DecodeSentences) and rule.source in sentences:
            rule.bound_numbers(schema, len(sentences[rule.source]))
    return schema


def _check_arguments(config: IOConfig, arguments: Mapping[str, Any]) -> None:
    wanted = instruction_fields(config)
    missing = [name for name in wanted if name not in arguments]
    if missing:
        raise IntrinsicInputError(f"missing arguments {missing}; this intrinsic takes {wanted}")
    unknown = sorted(set(arguments) - set(wanted))
    if unknown:
        raise IntrinsicInputError(f"unknown arguments {unknown}; this intrinsic takes {wanted}")
    for name, value in arguments.items():
        if not isinstance(value, str):
            raise IntrinsicInputError(
                f"argument {name!r} must be a string, got {type(value).__name__}"
            )


def _tag_message(message: ChatMessage, prefix: str) -> tuple[ChatMessage, tuple[Sentence, ...]]:
    tagged = tag_sentences(message.content, prefix)
    if not tagged.sentences:
        raise IntrinsicInputError("the last message has no sentences to tag; it is empty")
    return message.model_copy(update={"content": tagged.text}), tagged.sentences


def _tag_documents(
    documents: Sequence[Document], prefix: str
) -> tuple[list[Document], tuple[Sentence, ...]]:
    if not documents:
        raise IntrinsicInputError("this intrinsic needs documents; the request has none")
    tagged_documents, sentences = [], []
    for document in documents:
        tagged = tag_sentences(document.text, prefix, len(sentences), document.doc_id)
        tagged_documents.append(document.model_copy(update={"text": tagged.text}))
        sentences.extend(tagged.sentences)
    return tagged_documents, tuple(sentences)


def documents_message(documents: Sequence[Document], style: str) -> ChatMessage:
    if style == "json":
        # granite-common's key order (its Document declares text before doc_id)
        content = json.dumps([{"text": d.text, "doc_id": d.doc_id} for d in documents])
    else:
        content = DOCUMENTS_PREAMBLE + "\n\n".join(
            f"[Document {d.doc_id}]\n{d.text}" for d in documents
        )
    return ChatMessage(role="user", content=content)
