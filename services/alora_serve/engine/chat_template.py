"""Conversations -> prompt tokens through the model's chat template, safely.

Callers' text (message contents, documents) is data, never markup: if it contains the
model's control tokens (``<|im_start|>``, ``<|im_end|>``, ...), those characters are
tokenized as ordinary text, so a message cannot open a role, end a turn or spell an
adapter's invocation sequence. The text reaches the model unchanged otherwise; we escape
rather than reject because documents legitimately quote such strings (code, chat logs).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from alora_serve.engine.errors import TemplateKwargsError
from alora_serve.engine.types import RESERVED_TEMPLATE_KWARGS, ChatMessage

# Private-use code points: cannot come from the template, and callers' text containing
# them is escaped like control tokens (see _needs_escaping).
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


class ChatRenderer:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.control_tokens = tuple(
            token.content for token in tokenizer.added_tokens_decoder.values() if token.special
        )
        self.supports_documents = "documents" in (tokenizer.chat_template or "")
        # What chat_template_kwargs may set: the template's own variables, but not those
        # the renderer sets (as vLLM keeps only the variables a template declares).
        self.template_variables = _variables(tokenizer.chat_template) - RESERVED_TEMPLATE_KWARGS

    def render(
        self,
        messages: Sequence[ChatMessage],
        documents: Sequence[dict[str, str]] = (),
        generation_prompt: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Prompt tokens of ``messages`` (and ``documents``, for templates that take them),
        ending with the assistant's turn opener if ``generation_prompt``;
        ``template_kwargs``: further variables of the template (vLLM's
        ``chat_template_kwargs``)."""
        if not messages:
            raise ValueError("a chat needs at least one message")
        if documents and not self.supports_documents:
            raise ValueError(
                "this model's chat template takes no documents; send them as a message"
            )
        self._check(template_kwargs or {})
        texts = [m.content for m in messages] + [d["text"] for d in documents]
        template = functools.partial(
            self._template, generation_prompt=generation_prompt, **(template_kwargs or {})
        )
        if not any(self._needs_escaping(text) for text in texts):
            return self._encode(template(messages, documents))
        # Render with placeholders, then tokenize the callers' texts with control tokens
        # split into ordinary characters.
        masked_messages = [
            m.model_copy(update={"content": f"{_OPEN}{i}{_CLOSE}"}) for i, m in enumerate(messages)
        ]
        masked_documents = [
            {**d, "text": f"{_OPEN}{len(messages) + i}{_CLOSE}"} for i, d in enumerate(documents)
        ]
        rendered = template(masked_messages, masked_documents)
        tokens: list[int] = []
        for i, piece in enumerate(_PLACEHOLDER.split(rendered)):
            if i % 2 == 0:
                tokens += self._encode(piece)
            else:
                tokens += self._encode(texts[int(piece)], as_text=True)
        return tokens

    def _needs_escaping(self, text: str) -> bool:
        return _OPEN in text or _CLOSE in text or any(t in text for t in self.control_tokens)

    def _template(
        self,
        messages: Sequence[ChatMessage],
        documents: Sequence[dict[str, str]],
        generation_prompt: bool,
        **template_kwargs: Any,
    ) -> str:
        if documents:
            template_kwargs["documents"] = list(documents)
        return self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages],
            add_generation_prompt=generation_prompt,
            tokenize=False,
            **template_kwargs,
        )

    def _check(self, template_kwargs: Mapping[str, Any]) -> None:
        for key, value in template_kwargs.items():
            if key not in self.template_variables:
                takes = sorted(self.template_variables) or "none"
                raise TemplateKwargsError(
                    f"chat_template_kwargs.{key}: not a variable of this model's chat "
                    f"template; the ones a request may set: {takes}"
                )
            if isinstance(value, str) and self._needs_escaping(value):
                raise TemplateKwargsError(
                    f"chat_template_kwargs.{key}: holds a control token of the model; "
                    "template variables are rendered as they are, so they may not"
                )

    def _encode(self, text: str, as_text: bool = False) -> list[int]:
        if not text:
            return []
        # The template spells out its special tokens; callers' text never does.
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=as_text)[
            "input_ids"
        ]


def _variables(template: str | None) -> frozenset[str]:
    """The variables a chat template reads from its caller."""
    from jinja2 import Environment, meta

    if not template:
        return frozenset()
    environment = Environment(extensions=["jinja2.ext.loopcontrols"])
    return frozenset(meta.find_undeclared_variables(environment.parse(template)))
