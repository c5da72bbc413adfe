"""Errors of the engine API, each naming what the caller should change."""

from __future__ import annotations


class EngineError(RuntimeError):
    """Base of the engine's request errors."""


class UnknownAdapterError(EngineError, KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no adapter named {name!r}; loaded adapters: {sorted(known) or 'none'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class KVLoadError(EngineError):
    """vLLM refused a request because its prefix KV could not be supplied intact."""


class RequestFailedError(EngineError):
    """vLLM finished a request with an error."""


class PromptTooLongError(EngineError, ValueError):
    """The prompt plus the tokens to generate do not fit the model's context."""


class InvalidRequestError(EngineError, ValueError):
    """vLLM refused the request's parameters (its message names the parameter)."""
