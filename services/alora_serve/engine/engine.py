"""The engine API the services wrap: base generation and adapter invocation on vLLM.

One vLLM AsyncLLM runs the base model with every adapter loaded as a plain LoRA. For an
aLoRA adapter, the engine leases the base KV of the prompt before the invocation start s
from its KV store (computing it with the base model first if missing) and hands it to the
connector, so vLLM computes only tokens >= s, with the adapter: PEFT's aLoRA, exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from alora_serve.adapters import AdapterSpec, InvocationNotFoundError, find_invocation_start
from alora_serve.engine import loading, vllm_glue
from alora_serve.engine.chat_template import ChatRenderer
from alora_serve.engine.config import EngineConfig
from alora_serve.engine.constrained import determined_output
from alora_serve.engine.errors import (
    EngineError,
    KVLoadError,
    PromptTooLongError,
    UnknownAdapterError,
)
from alora_serve.engine.kv_owner import KVOwner
from alora_serve.engine.loading import LoadedAdapter
from alora_serve.engine.prefixes import HoldsPrefix, PrefixSource, hold_all
from alora_serve.engine.types import (
    DEFAULT_TENANT,
    ChatMessage,
    Generation,
    GenerationChunk,
    Phases,
    SamplingOptions,
    TemplateKwargs,
)
from alora_serve.engine.vllm_glue import EngineRequest
from alora_serve.kv.orders import SaveOrder, to_params
from alora_serve.kv.store.arena import SlotArena
from alora_serve.model import ModelCheckpoint, resolve_model

logger = logging.getLogger(__name__)

WARM_UP_SALT = "warm-up"  # no tenant's salt: warm-up blocks never match a real request


class Engine:
    """One running vLLM engine. Create with ``await Engine.start(config, adapters)``."""

    def __init__(
        self,
        config: EngineConfig,
        checkpoint: ModelCheckpoint,
        llm: Any,
        arena: SlotArena,
        adapters: dict[str, LoadedAdapter],
        kv_model: str,
    ) -> None:
        self.config = config
        self.checkpoint = checkpoint  # what vLLM runs: the base model, or an adapter merged
        self.tokenizer = llm.get_tokenizer()
        self.renderer = ChatRenderer(self.tokenizer)
        self.adapters = adapters
        self._llm = llm
        self.kv = KVOwner.for_engine(config, arena, kv_model, self.compute_base_kv)
        # Where adapter calls get base KV: this engine's store, unless a decode worker
        # points it at a prefill service (alora_serve.transfer).
        self.prefix_source: PrefixSource = self.kv
        self.kv_load_retries = 0
        self.in_flight = 0  # requests in vLLM now (cancelled calls abort theirs)

    @classmethod
    async def start(cls, config: EngineConfig, adapters: Sequence[AdapterSpec] = ()) -> Engine:
        base = resolve_model(config.model)
        loading.validate_adapters(adapters, base, config)
        kv_model = base.identity()
        served = loading.served_model(config, base, adapters)
        arena = SlotArena.create(loading.arena_spec(config, base))
        try:
            from vllm.v1.engine.async_llm import AsyncLLM
            from vllm.v1.metrics.loggers import PrometheusStatLogger

            args = vllm_glue.engine_args(
                config, served.checkpoint, arena.spec, served.max_lora_rank, kv_model
            )
            loggers = [PrometheusStatLogger] if config.vllm_metrics else None
            llm = AsyncLLM.from_engine_args(args, stat_loggers=loggers)
        except BaseException:
            arena.unlink()
            raise
        return cls(config, served.checkpoint, llm, arena, served.adapters, kv_model)

    # -- public API ------------------------------------------------------------------

    def render_chat(
        self, messages: Sequence[ChatMessage], template_kwargs: TemplateKwargs | None = None
    ) -> list[int]:
        """Prompt tokens for the next assistant turn, through the model's chat template
        (control tokens inside messages are escaped: see ``ChatRenderer``)."""
        return self.renderer.render(messages, template_kwargs=template_kwargs)

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
        template_kwargs: TemplateKwargs | None = None,
    ) -> Generation:
        return await self.generate(self.render_chat(messages, template_kwargs), options, tenant)

    async def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
        template_kwargs: TemplateKwargs | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """The base model's turn as it is generated; closing the stream aborts it."""
        self._require_base_model("generate base-model text")
        prompt = self.render_chat(messages, template_kwargs)
        sent, final = "", None
        request = EngineRequest(prompt, options, cache_salt=_tenant_salt(tenant))
        async with self._generating(request) as stream:
            async for final in stream:
                text = final.outputs[0].text
                if len(text) > len(sent):
                    yield GenerationChunk(text[len(sent) :])
                    sent = text
        result = vllm_glue.finished(final, carried_kv_order=False)
        yield GenerationChunk("", result.finish_reason, result.usage)

    @property
    def merged(self) -> bool:
        """Whether vLLM runs one adapter merged into the weights (no base model here)."""
        return self.config.adapter_mode == "merged"

    async def generate(
        self, prompt: Sequence[int], options: SamplingOptions, tenant: str = DEFAULT_TENANT
    ) -> Generation:
        """The base model's continuation of ``prompt`` (its KV stays in vLLM's cache for
        the tenant's later calls on the conversation)."""
        self._require_base_model("generate base-model text")
        return await self._run(EngineRequest(prompt, options, cache_salt=_tenant_salt(tenant)))

    async def invoke(
        self,
        adapter: str,
        prompt: Sequence[int],
        options: SamplingOptions,
        tenant: str = DEFAULT_TENANT,
        start: int | None = None,
    ) -> Generation:
        """Run ``adapter`` on ``prompt``. aLoRA: base KV of [0, ``start``) is reused;
        ``start`` is where the adapter's invocation begins (checked; found in ``prompt``
        when the caller does not know it)."""
        loaded = self._adapter(adapter)
        if not loaded.spec.is_alora:
            return await self._run(EngineRequest(prompt, options, loaded.lora_request))
        start = self._invocation_start(adapter, prompt, start)
        began = time.perf_counter()
        try:
            return await self._invoke_alora(loaded, prompt, start, options, tenant)
        except KVLoadError:
            # The store's bytes for this prefix failed verification and were dropped
            # (never served): the retry recomputes them with the base model.
            self.kv_load_retries += 1
            logger.warning("prefix KV for %r failed verification; recomputing", adapter)
            lost = time.perf_counter() - began  # spent on base KV that proved unusable
            result = await self._invoke_alora(loaded, prompt, start, options, tenant)
            phases = dataclasses.replace(result.phases, base_kv_s=result.phases.base_kv_s + lost)
            return dataclasses.replace(result, phases=phases)

    def holding(
        self, prefixes: Sequence[Sequence[int]], tenant: str = DEFAULT_TENANT
    ) -> contextlib.AbstractAsyncContextManager[dict[tuple[int, ...], HoldsPrefix]]:
        """The base KV of several prefixes, held together (see ``hold_all``) while the
        calls that start with them run."""
        return hold_all(self.prefix_source, prefixes, tenant)

    async def warm_up(
        self, adapter: str | None, prompt: Sequence[int], options: SamplingOptions
    ) -> None:
        """Pay the first-use costs of a kind of request (output grammar compilation, the
        adapter's load, the first steps) before serving: runs ``prompt`` through
        ``adapter`` (None: the base model) without base KV, salted so that nothing it
        caches is ever reused. Its output is meaningless and dropped."""
        lora_request = self._adapter(adapter).lora_request if adapter is not None else None
        await self._run(EngineRequest(prompt, options, lora_request, cache_salt=WARM_UP_SALT))

    async def compute_base_kv(self, prefix: Sequence[int], order: SaveOrder, tenant: str) -> int:
        """Run the base model over ``prefix`` and save its blocks as ``order`` says (a
        ``PrefixManager`` fill); returns the prompt tokens computed."""
        self._require_base_model("compute base-model KV")
        request = EngineRequest(
            prefix,
            SamplingOptions(max_tokens=1),
            kv_params=to_params(order),
            cache_salt=_tenant_salt(tenant),
        )
        return (await self._run(request)).usage.computed_prompt_tokens

    async def reset_local_prefix_cache(self) -> None:
        """Forget vLLM's own cached blocks (the store keeps its own): later calls load
        their base prefix from the store, as after vLLM evicted it."""
        await self._llm.reset_prefix_cache()

    async def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop vLLM and free the store (callable where no event loop runs)."""
        if self._llm is not None:
            self._llm.shutdown()
            # Drop it now: AsyncLLM.__del__ shuts down again, which fails noisily if it
            # only runs during interpreter teardown.
            self._llm = None
            self.kv.close()

    # -- internals -------------------------------------------------------------------

    async def _invoke_alora(
        self,
        loaded: LoadedAdapter,
        prompt: Sequence[int],
        start: int,
        options: SamplingOptions,
        tenant: str,
    ) -> Generation:
        asked = time.perf_counter()
        async with self.prefix_source.leased(prompt[:start], tenant) as lease:
            base_kv_s = time.perf_counter() - asked
            kv_params = to_params(lease.load_order())
            salt = _tenant_salt(tenant)
            request = EngineRequest(prompt, options, loaded.lora_request, kv_params, salt)
            result = await self._run(request)
        # vLLM counts the supplied [0, s) as cached; what the lease computed for this call
        # was not found but made.
        usage = result.usage
        reused = max(0, usage.reused_prompt_tokens - lease.computed_tokens)
        return dataclasses.replace(
            result,
            usage=dataclasses.replace(usage, reused_prompt_tokens=reused),
            phases=dataclasses.replace(result.phases, base_kv_s=base_kv_s),
        )

    def _adapter(self, name: str) -> LoadedAdapter:
        loaded = self.adapters.get(name)
        if loaded is None:
            raise UnknownAdapterError(name, list(self.adapters))
        return loaded

    def _invocation_start(self, adapter: str, prompt: Sequence[int], start: int | None) -> int:
        invocation = self.adapters[adapter].spec.invocation_tokens
        if start is None:
            start = find_invocation_start(prompt, invocation)
        elif tuple(prompt[start : start + len(invocation)]) != tuple(invocation):
            start = None
        if start is None:
            text = self.tokenizer.decode(list(invocation))
            raise InvocationNotFoundError(
                f"the prompt does not contain the invocation sequence {text!r} of "
                f"aLoRA adapter {adapter!r}; append it where the adapter should take over"
            )
        return start

    def _require_base_model(self, task: str) -> None:
        if self.merged:
            raise EngineError(
                f"this engine runs adapter {next(iter(self.adapters))!r} merged into its "
                f"weights and cannot {task}; use a prefill service or a lora-mode engine"
            )

    async def _run(self, request: EngineRequest) -> Generation:
        options = request.options
        final, determined, first_at = None, None, None
        submitted = time.perf_counter()
        async with self._generating(request) as stream:
            async for output in stream:
                final = output
                first_at = first_at or time.perf_counter()
                if options.stop_when_determined:
                    determined = determined_output(options.json_schema, output.outputs[0].text)
                    if determined is not None:
                        break
        done = time.perf_counter()
        first_at = first_at or done
        phases = Phases(prefill_s=first_at - submitted, decode_s=done - first_at)
        if determined is not None:
            result = vllm_glue.to_generation(final)
            result = dataclasses.replace(result, text=determined, finish_reason="stop")
        else:
            result = vllm_glue.finished(final, carried_kv_order=request.kv_params is not None)
        return dataclasses.replace(result, phases=phases)

    @contextlib.asynccontextmanager
    async def _generating(self, request: EngineRequest) -> AsyncIterator[AsyncIterator[Any]]:
        """vLLM's output stream of one request; leaving early (a break, an error, a
        cancelled call) aborts the request in vLLM."""
        limit, asked = self.config.max_model_len, request.options.max_tokens
        PromptTooLongError.check(len(request.prompt), asked, limit)
        stream = vllm_glue.generate(self._llm, request)
        self.in_flight += 1
        try:
            async with contextlib.aclosing(stream):
                yield vllm_glue.client_errors_named(stream)
        finally:
            self.in_flight -= 1


def _tenant_salt(tenant: str) -> str:
    """vLLM's own prefix cache is shared by all requests; salting by tenant keeps one
    tenant's blocks from ever being hits for another. (Blocks of aLoRA requests are
    keyed further, past s, by adapter and s: see
    ``alora_serve.kv.connector.shared_base_blocks``.)"""
    return f"tenant:{tenant}"
