"""Requests and results of the engine API (plain data, no vLLM imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
DEFAULT_TENANT = "default"  # calls without a tenant (no tokens configured) share this one
DEFAULT_MAX_TOKENS = 256  # generated tokens when a request names no limit
MAX_TEMPERATURE = 2.0  # OpenAI's range
MAX_SEED = 2**63 - 1
TemplateKwargs = Mapping[str, Any]  # further variables of a chat template
# Template variables the renderer sets itself, and apply_chat_template's own arguments: a
# caller's template_kwargs may not set them.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {"messages", "documents", "add_generation_prompt", "generation_prompt", "tokenize", "tools"}
    | {"chat_template"}
    | {"continue_final_message", "return_dict", "return_assistant_tokens_mask"}
)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class SamplingOptions(BaseModel):
    """The subset of sampling that intrinsics and chat need; greedy by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    logprobs: int | None = Field(default=None, ge=0, le=20, description="top-k logprobs per token")
    ignore_eos: bool = False
    stop: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=(), max_length=4, description="end the output before any of these strings"
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="constrain the output to JSON valid under this schema"
    )
    choice: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="constrain the output to one of these strings"
    )
    stop_when_determined: bool = Field(
        default=False,
        description="stop decoding once json_schema allows only one completion of the "
        "text so far (root enums); the result's text is that completion, its token_ids and "
        "logprobs the tokens actually generated",
    )


@dataclass(frozen=True)
class Usage:
    """What a request cost: ``reused_prompt_tokens`` had their KV already computed when
    the call began (vLLM's cache, the KV store, the prefill service); every other prompt
    token was computed for this call, wherever that happened (for an aLoRA call, its base
    prefix may have been computed by a separate base request first)."""

    prompt_tokens: int
    reused_prompt_tokens: int
    generated_tokens: int

    @property
    def computed_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.reused_prompt_tokens


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class StepLogprobs:
    """One generated token and the most likely tokens at its position (most likely
    first; the chosen token is among them when it ranks in the top k)."""

    chosen: TokenLogprob
    top: tuple[TokenLogprob, ...]


@dataclass(frozen=True)
class Phases:
    """Where a request's time went in the engine, in seconds."""

    base_kv_s: float = 0.0  # getting the base KV of [0, s) of an aLoRA call (and making it)
    prefill_s: float = 0.0  # submitted to vLLM -> first token (vLLM's queue, then prefill)
    decode_s: float = 0.0  # first token -> last


@dataclass(frozen=True)
class Generation:
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    usage: Usage
    logprobs: tuple[StepLogprobs, ...] | None = None
    phases: Phases = Phases()


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of a streamed generation: the text new since the previous chunk; the last
    chunk also says why generation ended and what it cost."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
