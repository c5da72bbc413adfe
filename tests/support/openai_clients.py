"""Clients no one here wrote, against a running server's OpenAI-compatible API: the
official ``openai`` SDK, and granite-common's intrinsics flow on top of it."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from alora_serve.intrinsics.builtins import BUILTIN_DIR
from tests.conformance.granite_common_041 import granite_common


def openai_client(url: str, timeout_s: float = 120.0) -> openai.OpenAI:
    """The SDK on the server at ``url``, no retries (a failure shows as it happened)."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=timeout_s, max_retries=0)


def granite_common_call(
    client: openai.OpenAI, name: str, request: dict, arguments: dict[str, Any]
) -> tuple[Any, ChatCompletion]:
    """A built-in intrinsic through granite-common's own flow, as its users run it on a
    vLLM server: ``IntrinsicsRewriter`` (from the built-in's io.yaml, the adapter named as
    the model) -> ``client.chat.completions.create`` -> ``IntrinsicsResultProcessor``.
    ``request``: {"messages", "documents"}. (the result, the SDK's completion)."""
    gc = granite_common()
    io_yaml = BUILTIN_DIR / f"{name}.yaml"
    chat = {"messages": request["messages"], "extra_body": {"documents": request["documents"]}}
    rewritten = gc.IntrinsicsRewriter(config_file=io_yaml, model_name=name).transform(
        chat, **arguments
    )
    body = rewritten.model_dump(exclude_none=True)
    extra_body = body.pop("extra_body", None)  # vLLM's fields: documents, structured_outputs
    completion = client.chat.completions.create(**body, extra_body=extra_body)
    processed = gc.IntrinsicsResultProcessor(config_file=io_yaml).transform(
        completion.model_dump(), rewritten
    )
    return json.loads(processed.choices[0].message.content), completion
