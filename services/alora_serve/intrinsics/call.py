"""The call model, one type each, passed whole from the front doors to the runner: what a
caller sends (a conversation with its documents, the intrinsics to run on it and their
arguments) and gets back (results with usage and timings; descriptions of intrinsics)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alora_serve.engine.types import (
    DEFAULT_TENANT,
    RESERVED_TEMPLATE_KWARGS,
    ChatMessage,
    SamplingOptions,
    StepLogprobs,
    Usage,
)
from alora_serve.errors import InvalidInputError


class IntrinsicInputError(InvalidInputError):
    """A call an intrinsic cannot take; the message says what to change."""

    reason = "INVALID_INTRINSIC_INPUT"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Document(_Frozen):
    doc_id: str = Field(min_length=1)
    text: str


class IntrinsicRequest(_Frozen):
    """The conversation intrinsics run on: its messages so far and its documents."""

    messages: list[ChatMessage] = Field(min_length=1)
    documents: list[Document] = Field(default_factory=list)
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="further variables of the model's chat template"
    )

    @field_validator("chat_template_kwargs")
    @classmethod
    def _not_reserved(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if reserved := sorted(RESERVED_TEMPLATE_KWARGS & set(kwargs)):
            raise ValueError(f"{reserved} are set by the server, not by chat_template_kwargs")
        return kwargs


class IntrinsicsCall(_Frozen):
    """Several intrinsics on one conversation (they share its base KV)."""

    intrinsics: list[str] = Field(min_length=1)
    request: IntrinsicRequest
    arguments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="each intrinsic's arguments (the values of its instruction's fields)",
    )
    tenant: str = DEFAULT_TENANT
    as_sent: SamplingOptions | None = Field(
        default=None,
        description="None: each intrinsic's io.yaml rewrites the request and turns its output "
        "into a result. Set: the request is already its adapter's input (a client such as "
        "granite-common rewrote it), generated as sent with these options; the result is the "
        "raw output with its logprobs (the OpenAI-compatible API)",
    )

    @model_validator(mode="after")
    def _as_sent_runs_one(self) -> IntrinsicsCall:
        if self.as_sent is not None and (len(self.intrinsics) != 1 or self.arguments):
            raise ValueError("a call as sent runs one intrinsic, without arguments")
        return self

    def only(self, names: list[str]) -> IntrinsicsCall:
        """The part of this call for ``names`` (with their arguments)."""
        arguments = {n: a for n, a in self.arguments.items() if n in names}
        return self.model_copy(update={"intrinsics": names, "arguments": arguments})

    def arguments_of(self, name: str) -> dict[str, Any]:
        return self.arguments.get(name, {})


class AdapterInfo(_Frozen):
    kind: str  # "alora" or "lora"; never the server's paths


class IntrinsicInfo(_Frozen):
    """What a served intrinsic is and takes (``ListIntrinsics``, ``GET /v1/intrinsics``)."""

    name: str
    description: str
    adapter: AdapterInfo
    arguments: list[str]  # the caller-supplied fields of its instruction
    requires_documents: bool
    response_format: dict[str, Any] | None
    result_schema: dict[str, Any] | None


@dataclass(frozen=True)
class Timings:
    """Where a result's time went, in seconds; the phases add up to ``total_s``, the
    whole call as its caller saw it (a call of several intrinsics ends when its slowest
    intrinsic does: they share ``total_s``; those on one worker share ``queue_s`` and the
    leasing of their base KV)."""

    total_s: float = 0.0
    queue_s: float = 0.0  # before and after the worker: admission, routing, transport
    base_kv_s: float = 0.0  # leasing the base KV of the call's prefixes, computing any missing
    adapter_prefill_s: float = 0.0  # adapter request submitted -> first token
    decode_s: float = 0.0  # first token -> last
    worker_s: float = 0.0  # the whole call on the worker that ran this intrinsic

    @property
    def other_s(self) -> float:
        """The rest: rendering, output processing, waiting for the call's other
        intrinsics."""
        phases = self.queue_s + self.base_kv_s + self.adapter_prefill_s + self.decode_s
        return max(0.0, self.total_s - phases)

    def seen_from_front_door(
        self, received_at: float, answered_at: float, finished_at: float
    ) -> Timings:
        """A worker's timings as the whole call (``time.perf_counter()`` instants): time
        outside the worker until its answer arrived is queueing (admission, routing,
        transport)."""
        queue_s = max(0.0, answered_at - received_at - self.worker_s)
        return dataclasses.replace(self, total_s=finished_at - received_at, queue_s=queue_s)


@dataclass(frozen=True)
class IntrinsicResult:
    name: str
    result: Any  # None for a call as sent
    raw_output: str
    usage: Usage
    timings: Timings
    logprobs: tuple[StepLogprobs, ...] | None = None  # a call as sent that asked for them
    finish_reason: str | None = None
