"""Which intrinsic a chat completion names: vLLM's way (``model``: the adapter) or Granite
Switch's and Mellea's (the base model, ``chat_template_kwargs.adapter_name``)."""

from __future__ import annotations

import pytest

from alora_serve.gateway.auth import PermissionDeniedError, Principal
from alora_serve.gateway.openai.request import (
    ChatCompletionRequest,
    RequestFieldError,
    UnknownModelError,
)
from alora_serve.topology.chat_completions import ChatCompletions

BASE = "SmolLM2-135M-Instruct"
HELLO = [{"role": "user", "content": "hi"}]
EVERYONE = Principal("default", None)


def named(principal: Principal = EVERYONE, **fields) -> str | None:
    chats = ChatCompletions(
        backend=None, model_name=BASE, intrinsics=["requirement_check", "answerability"]
    )
    body = ChatCompletionRequest.model_validate({"messages": HELLO, **fields})
    return chats.intrinsic_of(body, principal)


def test_the_base_model_or_no_model_is_the_base_model_s_turn() -> None:
    assert named() is None and named(model=BASE) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "requirement_check"},  # vLLM: the adapter as the model
        {"model": "requirement-check"},
        {"model": BASE, "chat_template_kwargs": {"adapter_name": "requirement-check"}},
        {
            "model": "requirement_check",
            "chat_template_kwargs": {"adapter_name": "requirement-check"},
        },
    ],
)
def test_an_intrinsic_is_named_as_vllm_or_granite_switch_names_it(fields) -> None:
    assert named(**fields) == "requirement_check"


def test_the_adapter_name_is_not_a_template_variable() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": HELLO, "chat_template_kwargs": {"adapter_name": "x", "thinking": False}}
    )
    assert body.conversation().chat_template_kwargs == {"thinking": False}


def test_what_names_no_served_intrinsic_is_refused_naming_the_field() -> None:
    with pytest.raises(UnknownModelError) as unknown:
        named(chat_template_kwargs={"adapter_name": "telepathy"})
    assert unknown.value.param == "chat_template_kwargs.adapter_name"
    assert BASE in str(unknown.value) and "requirement_check" in str(unknown.value)
    with pytest.raises(RequestFieldError, match="not the model's adapter"):
        named(model="requirement_check", chat_template_kwargs={"adapter_name": "answerability"})
    with pytest.raises(RequestFieldError, match="documents are for intrinsics"):
        named(documents=[{"doc_id": "1", "text": "t"}])


def test_the_caller_s_token_decides_which_intrinsics_it_may_name() -> None:
    with pytest.raises(PermissionDeniedError):
        named(Principal("acme", frozenset({"answerability"})), model="requirement_check")
