"""Errors of the engine API, each naming what the caller should change."""

from __future__ import annotations

from alora_serve.errors import InternalError, InvalidInputError, NotFoundError, TooLongError


class EngineError(InternalError):
    """The engine was asked for something it cannot do (e.g. base-model text from an
    engine that runs an adapter merged into its weights)."""


class UnknownAdapterError(NotFoundError):
    reason = "UNKNOWN_ADAPTER"

    def __init__(self, name: str, known: list[str]) -> None:
        loaded = sorted(known) or "none"
        super().__init__(f"no adapter named {name!r}; loaded adapters: {loaded}", ("adapter", name))


class KVLoadError(InternalError):
    """vLLM refused a request because its prefix KV could not be supplied intact."""


class RequestFailedError(InternalError):
    """vLLM finished a request with an error."""


class PromptTooLongError(TooLongError):
    """The prompt plus the tokens to generate do not fit the model's context."""

    @classmethod
    def check(cls, prompt_tokens: int, max_tokens: int, limit: int) -> None:
        if prompt_tokens + max_tokens > limit:
            raise cls(
                f"the prompt is {prompt_tokens} tokens and up to {max_tokens} more may "
                f"be generated, over the model's context of {limit} tokens; shorten the "
                "conversation or ask for fewer tokens"
            )


class TemplateKwargsError(InvalidInputError):
    """``chat_template_kwargs`` the model's chat template does not take as given."""


class InvalidRequestError(InvalidInputError):
    """vLLM refused the request's parameters (its message names the parameter)."""
