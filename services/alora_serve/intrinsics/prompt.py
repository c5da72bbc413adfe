"""An intrinsic's prompt tokens, rendered the one way serving and training both use: the
rewritten conversation through the model's chat template, then the adapter's invocation
for aLoRA (before it, the base model's KV is reused)."""

from __future__ import annotations

from collections.abc import Sequence

from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.engine.types import TemplateKwargs
from alora_serve.intrinsics.rewrite import RewrittenRequest, documents_message


def adapter_prompt(
    renderer: ChatRenderer,
    rewritten: RewrittenRequest,
    invocation: Sequence[int] | None,
    template_kwargs: TemplateKwargs | None = None,
) -> tuple[tuple[int, ...], int]:
    """(prompt tokens, where the adapter starts: 0 for a plain LoRA, which runs on the
    whole prompt and gets the assistant's turn opener instead of an invocation)."""
    conversation = render(renderer, rewritten, not invocation, template_kwargs)
    if not invocation:
        return tuple(conversation), 0
    return (*conversation, *invocation), len(conversation)


def render(
    renderer: ChatRenderer,
    rewritten: RewrittenRequest,
    generation_prompt: bool,
    template_kwargs: TemplateKwargs | None = None,
) -> list[int]:
    """The rewritten conversation's tokens; documents go in a message for templates that
    take none."""
    messages, documents = list(rewritten.messages), list(rewritten.documents)
    if documents and not renderer.supports_documents:
        messages.insert(0, documents_message(documents, "string"))
        documents = []
    return renderer.render(
        messages,
        [d.model_dump() for d in documents],
        generation_prompt=generation_prompt,
        template_kwargs=template_kwargs,
    )
