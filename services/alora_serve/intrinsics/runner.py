"""Running intrinsics on the engine: rewrite, render, constrained decoding, output
processing; several intrinsics on one conversation share its base prefix."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alora_serve.engine import Engine
from alora_serve.engine.errors import PromptTooLongError
from alora_serve.engine.prefixes import HoldsPrefix
from alora_serve.engine.types import (
    DEFAULT_MAX_TOKENS,
    ChatMessage,
    Generation,
    SamplingOptions,
    TemplateKwargs,
)
from alora_serve.errors import InternalError, TooLongError
from alora_serve.intrinsics.call import (
    Document,
    IntrinsicInputError,
    IntrinsicRequest,
    IntrinsicResult,
    IntrinsicsCall,
    Timings,
)
from alora_serve.intrinsics.catalog import Catalog, Intrinsic
from alora_serve.intrinsics.output import OutputParseError, process_output
from alora_serve.intrinsics.prompt import adapter_prompt
from alora_serve.intrinsics.rewrite import (
    RewrittenRequest,
    instruction_fields,
    rewrite_request,
)
from alora_serve.intrinsics.schemas import max_json_chars
from alora_serve.intrinsics.transformations import TransformationError


class InputTooLongError(TooLongError, IntrinsicInputError):
    """The rendered prompt plus the intrinsic's output would not fit the model."""


class IntrinsicOutputError(InternalError):
    """The adapter's output could not be turned into a result (e.g. cut at max tokens)."""

    reason = "INVALID_INTRINSIC_OUTPUT"


class OutputTruncatedError(IntrinsicOutputError):
    """The output reached its token budget before it was complete."""

    reason = "OUTPUT_TRUNCATED"


@dataclass(frozen=True)
class PreparedCall:
    intrinsic: Intrinsic
    rewritten: RewrittenRequest
    prompt: tuple[int, ...]
    adapter_start: int  # tokens before this run on the base model (aLoRA); 0 for LoRA
    options: SamplingOptions
    as_sent: bool = False  # the client rewrote the request and processes the output


class IntrinsicRunner:
    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog

    def prepare(
        self, name: str, request: IntrinsicRequest, arguments: Mapping[str, Any] | None = None
    ) -> PreparedCall:
        """Everything up to the engine call; bad input fails here, before any work."""
        intrinsic = self.catalog.get(name)
        if intrinsic.requires_documents and not request.documents:
            raise IntrinsicInputError(f"intrinsic {name!r} needs documents; the request has none")
        rewritten = rewrite_request(intrinsic.config, request, arguments)
        prompt, start = self._prompt(intrinsic, rewritten, request.chat_template_kwargs)
        max_tokens = self._output_budget(name, len(prompt), rewritten)
        return PreparedCall(intrinsic, rewritten, prompt, start, _sampling(rewritten, max_tokens))

    def prepare_as_sent(
        self, name: str, request: IntrinsicRequest, options: SamplingOptions
    ) -> PreparedCall:
        """A request its client already rewrote into the adapter's input (granite-common's
        IntrinsicsRewriter): rendered and generated as sent."""
        intrinsic = self.catalog.get(name)
        rewritten = RewrittenRequest(
            messages=tuple(request.messages),
            documents=tuple(request.documents),
            response_schema=options.json_schema,
            top_logprobs=options.logprobs,
        )
        prompt, start = self._prompt(intrinsic, rewritten, request.chat_template_kwargs)
        # before any base KV is computed for it
        PromptTooLongError.check(len(prompt), options.max_tokens, self.engine.config.max_model_len)
        return PreparedCall(intrinsic, rewritten, prompt, start, options, as_sent=True)

    def _prompt(
        self, intrinsic: Intrinsic, rewritten: RewrittenRequest, template_kwargs: TemplateKwargs
    ) -> tuple[tuple[int, ...], int]:
        invocation = intrinsic.adapter.invocation_tokens
        return adapter_prompt(self.engine.renderer, rewritten, invocation, template_kwargs)

    def _output_budget(self, name: str, prompt_tokens: int, rewritten: RewrittenRequest) -> int:
        """The io.yaml's token budget, raised to the longest output the schema allows
        (each token is at least one character) so constrained decoding always completes
        the JSON, within the room the context leaves."""
        limit = self.engine.config.max_model_len
        wanted = _max_tokens(rewritten)
        if prompt_tokens + wanted > limit:
            raise InputTooLongError(
                f"input too long for {name!r}: {prompt_tokens} prompt tokens plus up to "
                f"{wanted} generated exceed the model's {limit}; shorten the conversation "
                "or documents"
            )
        bound = max_json_chars(rewritten.response_schema or {}) + 1  # + end of text
        if math.isinf(bound):
            return wanted
        return int(min(max(wanted, bound), limit - prompt_tokens))

    async def run(
        self,
        name: str,
        request: IntrinsicRequest,
        tenant: str,
        arguments: Mapping[str, Any] | None = None,
    ) -> IntrinsicResult:
        call = IntrinsicsCall(
            intrinsics=[name],
            request=request,
            arguments={name: dict(arguments or {})},
            tenant=tenant,
        )
        (result,) = await self.run_many(call)
        return result

    async def run_many(self, call: IntrinsicsCall) -> list[IntrinsicResult]:
        """Several intrinsics on one conversation: the base KV of every call's prefix is
        computed first (the conversation once, each instruction once) and held while the
        adapters run, batched."""
        started = time.perf_counter()
        calls = self._prepare_all(call)
        holding = time.perf_counter()
        async with self.engine.holding(_base_prefixes(calls), call.tenant) as held:
            base_kv_s = time.perf_counter() - holding
            generations = await asyncio.gather(*(self._generate(c, call.tenant) for c in calls))
        worker_s = time.perf_counter() - started
        return [
            self._result(call, generation, held, Timings(base_kv_s=base_kv_s, worker_s=worker_s))
            for call, generation in zip(calls, generations, strict=True)
        ]

    async def prefill(self, call: IntrinsicsCall) -> int:
        """Compute and keep the base KV these intrinsics will need on this conversation
        (e.g. right after the base model's turn), so that their calls only decode.
        Returns the prompt tokens whose KV is kept (the longest prefix)."""
        prefixes = _base_prefixes(self._prepare_all(call))
        async with self.engine.holding(prefixes, call.tenant):
            pass
        return max(map(len, prefixes), default=0)

    async def warm_up(self) -> dict[str, float]:
        """Run every intrinsic once on a made-up conversation (see ``Engine.warm_up``), so
        the first real call costs what later ones do; seconds per intrinsic."""

        async def warm(name: str) -> float:
            started = time.perf_counter()
            call = self.prepare(name, *_warm_up_request(self.catalog.get(name)))
            await self.engine.warm_up(name, call.prompt, call.options)
            return time.perf_counter() - started

        names = self.catalog.names()
        return dict(zip(names, await asyncio.gather(*map(warm, names)), strict=True))

    def _prepare_all(self, call: IntrinsicsCall) -> list[PreparedCall]:
        names = call.intrinsics
        if len(set(names)) != len(names):
            raise IntrinsicInputError(f"intrinsics named more than once in {list(names)}")
        stray = sorted(set(call.arguments) - set(names))
        if stray:
            raise IntrinsicInputError(f"arguments given for intrinsics not called: {stray}")
        if call.as_sent is not None:
            return [self.prepare_as_sent(names[0], call.request, call.as_sent)]
        return [self.prepare(name, call.request, call.arguments_of(name)) for name in names]

    async def _generate(self, call: PreparedCall, tenant: str) -> Generation:
        name = call.intrinsic.name
        generation = await self.engine.invoke(
            name, call.prompt, call.options, tenant, start=call.adapter_start
        )
        if generation.finish_reason == "length" and not call.as_sent:
            raise OutputTruncatedError(
                f"{name!r} output reached its {call.options.max_tokens} token limit before "
                "its JSON was complete; raise max_completion_tokens in its io.yaml"
            )
        return generation

    def _result(
        self,
        call: PreparedCall,
        generation: Generation,
        held: Mapping[tuple[int, ...], HoldsPrefix],
        shared: Timings,
    ) -> IntrinsicResult:
        """The intrinsic's result, with its usage (what its held prefix computed was not
        reused) and its timings (the call's shared phases plus its own)."""
        name = call.intrinsic.name
        result = None if call.as_sent else self._processed(call, generation)
        lease = held.get(call.prompt[: call.adapter_start])
        usage = generation.usage
        reused = usage.reused_prompt_tokens - (lease.computed_tokens if lease else 0)
        phases = generation.phases
        timings = dataclasses.replace(
            shared,
            total_s=shared.worker_s,
            base_kv_s=shared.base_kv_s + phases.base_kv_s,
            adapter_prefill_s=phases.prefill_s,
            decode_s=phases.decode_s,
        )
        usage = dataclasses.replace(usage, reused_prompt_tokens=max(0, reused))
        logprobs = generation.logprobs if call.as_sent else None
        finish_reason = generation.finish_reason
        return IntrinsicResult(
            name, result, generation.text, usage, timings, logprobs, finish_reason
        )

    @staticmethod
    def _processed(call: PreparedCall, generation: Generation) -> Any:
        try:
            return process_output(
                call.intrinsic.config,
                generation.text,
                generation.logprobs or (),
                call.rewritten.sentences,
            )
        except (OutputParseError, TransformationError) as exc:
            raise IntrinsicOutputError(f"{call.intrinsic.name!r}: {exc}") from None


def _warm_up_request(intrinsic: Intrinsic) -> tuple[IntrinsicRequest, dict[str, str]]:
    """A small request every intrinsic accepts (a turn each way, a document) and a value
    for each of its instruction's fields."""
    request = IntrinsicRequest(
        messages=[
            ChatMessage(role="user", content="Is the sky blue?"),
            ChatMessage(role="assistant", content="Yes. The sky is blue on a clear day."),
        ],
        documents=[Document(doc_id="0", text="On a clear day the sky is blue.")],
    )
    return request, dict.fromkeys(instruction_fields(intrinsic.config), "Answer in one sentence.")


def _base_prefixes(calls: Sequence[PreparedCall]) -> list[tuple[int, ...]]:
    return sorted({c.prompt[: c.adapter_start] for c in calls if c.adapter_start})


def _max_tokens(rewritten: RewrittenRequest) -> int:
    parameters = rewritten.parameters
    wanted = parameters.get("max_completion_tokens", parameters.get("max_tokens"))
    return wanted or DEFAULT_MAX_TOKENS  # the io.yaml names no budget


def _sampling(rewritten: RewrittenRequest, max_tokens: int) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=rewritten.parameters.get("temperature", 0.0),
        logprobs=rewritten.top_logprobs,
        json_schema=rewritten.response_schema,
        # The transformations need only the tokens that chose the value.
        stop_when_determined=True,
    )
