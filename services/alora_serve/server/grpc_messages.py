"""Conversions between the public API's messages (alora.v1) and the serving layer's
values. Pure functions: the gateway validates with them before any work starts."""

from __future__ import annotations

from typing import Any

from alora.v1 import intrinsics_pb2 as pb
from google.protobuf import json_format

from alora_serve.intrinsics.call import IntrinsicsCall
from alora_serve.intrinsics.rewrite import IntrinsicRequest
from alora_serve.intrinsics.runner import IntrinsicResult

# Result fields of stable built-ins -> the typed view IntrinsicResult offers for them.
_LIKELIHOODS = {"answerability_likelihood": "answerability_likelihood", "certainty": "certainty"}


def request_from_pb(conversation: pb.Conversation, arguments: dict[str, Any]) -> IntrinsicRequest:
    """Raises pydantic's ValidationError, naming the field, on a malformed conversation."""
    return IntrinsicRequest.model_validate(
        {
            "messages": [{"role": m.role, "content": m.content} for m in conversation.messages],
            "documents": [{"doc_id": d.doc_id, "text": d.text} for d in conversation.documents],
            "arguments": arguments,
        }
    )


def call_from_pb(request: pb.RunIntrinsicsRequest, tenant: str) -> IntrinsicsCall:
    return IntrinsicsCall(
        intrinsics=list(request.intrinsics),
        request=request_from_pb(request.conversation, {}),
        arguments={name: _struct(args) for name, args in request.arguments.items()},
        tenant=tenant,
    )


def single_call_from_pb(request: pb.RunIntrinsicRequest, tenant: str) -> IntrinsicsCall:
    return IntrinsicsCall(
        intrinsics=[request.intrinsic],
        request=request_from_pb(request.conversation, _struct(request.arguments)),
        tenant=tenant,
    )


def result_to_pb(result: IntrinsicResult, total_s: float) -> pb.IntrinsicResult:
    message = pb.IntrinsicResult(
        intrinsic=result.name,
        raw_output=result.raw_output,
        usage=pb.Usage(
            prompt_tokens=result.usage.prompt_tokens,
            reused_prompt_tokens=result.usage.reused_prompt_tokens,
            generated_tokens=result.usage.generated_tokens,
        ),
    )
    json_format.ParseDict(result.result, message.result)
    message.timings.total.FromNanoseconds(int(total_s * 1e9))
    message.timings.worker.FromNanoseconds(int(result.seconds * 1e9))
    _set_typed_view(message, result.result)
    return message


def info_to_pb(described: dict[str, Any]) -> pb.IntrinsicInfo:
    """An entry of ``Catalog.describe()``."""
    info = pb.IntrinsicInfo(
        name=described["name"],
        description=described["description"],
        needs_documents=described["requires_documents"],
        adapter_kind=described["adapter"]["kind"],
    )
    for argument in described["arguments"]:
        info.arguments[argument] = {"type": "string"}
    json_format.ParseDict(described["result_schema"] or {}, info.result_schema)
    return info


def _set_typed_view(message: pb.IntrinsicResult, result: Any) -> None:
    if not isinstance(result, dict) or len(result) != 1:
        return
    ((key, value),) = result.items()
    if key in _LIKELIHOODS and isinstance(value, int | float):
        getattr(message, _LIKELIHOODS[key]).value = float(value)
    elif key == "rewritten_question" and isinstance(value, str):
        message.rewritten_question = value


def _struct(struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)
