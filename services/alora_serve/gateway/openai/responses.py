"""Chat completion bodies and stream chunks, usage, and the model list, as vLLM's OpenAI
server writes them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alora_serve.engine.types import StepLogprobs, TokenLogprob, Usage
from alora_serve.intrinsics.call import IntrinsicInfo


@dataclass(frozen=True)
class Completion:
    """What a chat completion answers, from the base model or an intrinsic."""

    text: str
    finish_reason: str | None
    usage: Usage
    logprobs: Sequence[StepLogprobs] | None = None


class Responses:
    """Bodies and stream chunks of one request's answer (one id and time for all)."""

    def __init__(self, model: str, top_logprobs: int | None) -> None:
        self.model = model
        self.top_logprobs = top_logprobs or 0
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def completion(self, completion: Completion) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "logprobs": self._logprobs(completion.logprobs),
            "finish_reason": completion.finish_reason,
        }
        body = self._head("chat.completion", [choice])
        return {**body, "usage": usage_body(completion.usage)}

    def chunk(
        self,
        delta: dict[str, str],
        finish_reason: str | None = None,
        logprobs: Sequence[StepLogprobs] | None = None,
    ) -> dict[str, Any]:
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": self._logprobs(logprobs),
            "finish_reason": finish_reason,
        }
        return self._head("chat.completion.chunk", [choice])

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        return {**self._head("chat.completion.chunk", []), "usage": usage_body(usage)}

    def chunks_of(self, completion: Completion, include_usage: bool) -> Iterator[dict[str, Any]]:
        """A completion as a stream: the role, the text in one piece, the end."""
        yield self.chunk({"role": "assistant", "content": ""})
        yield self.chunk({"content": completion.text}, logprobs=completion.logprobs)
        yield self.chunk({}, completion.finish_reason)
        if include_usage:
            yield self.usage_chunk(completion.usage)

    def _head(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _logprobs(self, steps: Sequence[StepLogprobs] | None) -> dict[str, Any] | None:
        if steps is None:
            return None
        return {"content": [self._step(step) for step in steps]}

    def _step(self, step: StepLogprobs) -> dict[str, Any]:
        # vLLM adds the chosen token after the top k when it ranks below them
        top = step.top[: self.top_logprobs]
        return {**_token(step.chosen), "top_logprobs": [_token(t) for t in top]}


def _token(token: TokenLogprob) -> dict[str, Any]:
    return {
        "token": token.text,
        "logprob": max(token.logprob, -9999.0),  # OpenAI's floor (and JSON has no -inf)
        "bytes": list(token.text.encode()),
    }


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.generated_tokens,
        "total_tokens": usage.prompt_tokens + usage.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.reused_prompt_tokens},
    }


DONE_EVENT = "data: [DONE]\n\n"  # how OpenAI ends a stream


def event(data: dict[str, Any]) -> str:
    """A server-sent event."""
    return f"data: {json.dumps(data)}\n\n"


def models_list(model_name: str, intrinsics: Sequence[IntrinsicInfo], created: int) -> dict:
    """``GET /v1/models``: the base model, then each intrinsic as vLLM lists a LoRA module
    (``parent``: the base model; ``root``: its name, never the server's path)."""

    def card(name: str, parent: str | None) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "alora-serve",
            "root": name,
            "parent": parent,
        }

    cards = [card(model_name, None)] + [card(info.name, model_name) for info in intrinsics]
    return {"object": "list", "data": cards}


STREAM_RESPONSE = {200: {"content": {"text/event-stream": {}}, "description": "the answer"}}
