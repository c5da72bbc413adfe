"""An example as training tokens, rendered exactly as serving renders the call (the same
rewrite, chat template and invocation): the prompt before the invocation runs on the
base model, the invocation and the target with the adapter; the loss is on the target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.intrinsics.io_config import IOConfig
from alora_serve.intrinsics.prompt import adapter_prompt
from alora_serve.intrinsics.rewrite import rewrite_request
from alora_serve.training.examples import Example

IGNORED = -100  # the label of tokens without loss (PyTorch's cross-entropy default)


class ExampleTooLongError(ValueError):
    pass


@dataclass(frozen=True)
class Encoded:
    prefix: tuple[int, ...]  # before the invocation: the base model's KV
    suffix: tuple[int, ...]  # the invocation (aLoRA; none for LoRA) and the target
    labels: tuple[int, ...]  # per suffix token: IGNORED, or the token to learn

    @property
    def tokens(self) -> int:
        return len(self.prefix) + len(self.suffix)


@dataclass(frozen=True)
class Encoder:
    renderer: ChatRenderer
    config: IOConfig
    invocation: Sequence[int] | None  # None: a plain LoRA
    end_token: int  # what ends the adapter's output (the model's end of turn)
    max_tokens: int

    def encode(self, example: Example) -> Encoded:
        rewritten = rewrite_request(self.config, example.request, example.arguments)
        prompt, start = adapter_prompt(
            self.renderer, rewritten, self.invocation, example.request.chat_template_kwargs
        )
        target = (*self.renderer.tokenizer.encode(example.target, add_special_tokens=False),)
        target += (self.end_token,)
        if len(prompt) + len(target) > self.max_tokens:
            raise ExampleTooLongError(
                f"{len(prompt)} prompt and {len(target)} target tokens exceed {self.max_tokens}"
            )
        adapter_part = prompt[start:]  # the invocation, or nothing for LoRA
        return Encoded(
            prefix=prompt[:start],
            suffix=(*adapter_part, *target),
            labels=(IGNORED,) * len(adapter_part) + target,
        )
