"""Conversions between the public API's messages (alora.v1) and the serving layer's
values. Pure functions: the gateway validates with them before any work starts."""

from __future__ import annotations

from typing import Any

from alora.v1 import intrinsics_pb2 as pb
from google.protobuf import json_format

from alora_serve.engine.types import (
    DEFAULT_MAX_TOKENS,
    ChatMessage,
    GenerationChunk,
    SamplingOptions,
    Usage,
)
from alora_serve.intrinsics.call import (
    IntrinsicInfo,
    IntrinsicInputError,
    IntrinsicRequest,
    IntrinsicResult,
    IntrinsicsCall,
    Timings,
)

# Result fields of stable built-ins -> the typed view IntrinsicResult offers for them.
_LIKELIHOODS = {"answerability_likelihood": "answerability_likelihood", "certainty": "certainty"}


def request_from_pb(conversation: pb.Conversation) -> IntrinsicRequest:
    """Raises pydantic's ValidationError, naming the field, on a malformed conversation."""
    return IntrinsicRequest.model_validate(
        {
            "messages": [{"role": m.role, "content": m.content} for m in conversation.messages],
            "documents": [{"doc_id": d.doc_id, "text": d.text} for d in conversation.documents],
        }
    )


def call_from_pb(request: pb.RunIntrinsicsRequest, tenant: str) -> IntrinsicsCall:
    return IntrinsicsCall(
        intrinsics=list(request.intrinsics),
        request=request_from_pb(request.conversation),
        arguments={name: _struct(args) for name, args in request.arguments.items()},
        tenant=tenant,
    )


def single_call_from_pb(request: pb.RunIntrinsicRequest, tenant: str) -> IntrinsicsCall:
    return IntrinsicsCall(
        intrinsics=[request.intrinsic],
        request=request_from_pb(request.conversation),
        arguments={request.intrinsic: _struct(request.arguments)},
        tenant=tenant,
    )


def prefill_call_from_pb(request: pb.PrefillConversationRequest, tenant: str) -> IntrinsicsCall:
    return IntrinsicsCall(
        intrinsics=list(request.intrinsics),
        request=request_from_pb(request.conversation),
        tenant=tenant,
    )


def generation_from_pb(
    request: pb.GenerateRequest,
) -> tuple[list[ChatMessage], SamplingOptions]:
    """Raises pydantic's ValidationError, naming the field. Zero sampling fields mean
    their defaults (proto3 cannot tell unset from zero)."""
    if request.conversation.documents:
        raise IntrinsicInputError(
            "Generate takes no documents: put what the model should read in the messages"
        )
    sampling = request.sampling
    options = SamplingOptions.model_validate(
        {
            "max_tokens": sampling.max_tokens or DEFAULT_MAX_TOKENS,  # proto3: 0 is unset
            "temperature": sampling.temperature,
            "top_p": sampling.top_p or 1.0,
            "seed": sampling.seed if sampling.HasField("seed") else None,
        }
    )
    messages = [
        ChatMessage.model_validate({"role": m.role, "content": m.content})
        for m in request.conversation.messages
    ]
    if not messages:
        raise IntrinsicInputError("the conversation has no messages")
    return messages, options


def chunk_to_pb(chunk: GenerationChunk) -> pb.GenerateChunk:
    message = pb.GenerateChunk(text=chunk.text, finish_reason=chunk.finish_reason or "")
    if chunk.usage is not None:
        message.usage.CopyFrom(_usage_to_pb(chunk.usage))
    return message


def result_to_pb(result: IntrinsicResult) -> pb.IntrinsicResult:
    message = pb.IntrinsicResult(
        intrinsic=result.name,
        raw_output=result.raw_output,
        usage=_usage_to_pb(result.usage),
        timings=_timings_to_pb(result.timings),
    )
    json_format.ParseDict(result.result, message.result)
    _set_typed_view(message, result.result)
    return message


def info_to_pb(described: IntrinsicInfo) -> pb.IntrinsicInfo:
    info = pb.IntrinsicInfo(
        name=described.name,
        description=described.description,
        needs_documents=described.requires_documents,
        adapter_kind=described.adapter.kind,
    )
    for argument in described.arguments:
        info.arguments[argument] = {"type": "string"}
    json_format.ParseDict(described.result_schema or {}, info.result_schema)
    return info


def _set_typed_view(message: pb.IntrinsicResult, result: Any) -> None:
    if not isinstance(result, dict) or len(result) != 1:
        return
    ((key, value),) = result.items()
    if key in _LIKELIHOODS and isinstance(value, int | float):
        getattr(message, _LIKELIHOODS[key]).value = float(value)
    elif key == "rewritten_question" and isinstance(value, str):
        message.rewritten_question = value


def _timings_to_pb(timings: Timings) -> pb.Timings:
    """Whole nanoseconds that still add up: ``other`` is what the phases leave of
    ``total``."""
    ns = {
        "total": timings.total_s,
        "worker": timings.worker_s,
        "queue": timings.queue_s,
        "base_kv": timings.base_kv_s,
        "adapter_prefill": timings.adapter_prefill_s,
        "decode": timings.decode_s,
    }
    ns = {field: round(seconds * 1e9) for field, seconds in ns.items()}
    phases = ns["queue"] + ns["base_kv"] + ns["adapter_prefill"] + ns["decode"]
    ns["other"] = max(0, ns["total"] - phases)
    message = pb.Timings()
    for field, nanoseconds in ns.items():
        getattr(message, field).FromNanoseconds(nanoseconds)
    return message


def _usage_to_pb(usage: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        reused_prompt_tokens=usage.reused_prompt_tokens,
        generated_tokens=usage.generated_tokens,
    )


def _struct(struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)
